/**
 * Where the WebSocket goes, and where an event's toast links to.
 *
 * Links are built from the event's `path` (a site path such as /Plone/news/item) and the site
 * the server's welcome names, never from the event's `url`: that is the URL Zope computed for
 * the editor's request (another host name, Classic UI's /Plone/... paths, the instance behind
 * the front), which this origin cannot vouch for. Volto shows the site at the root of its
 * origin, so a path below the site is its Volto route: /Plone/news/item -> /news/item, what
 * flattenToAppURL makes of the item's URL in Volto's own API answers.
 */

/** The WebSocket URL: `settings.url` when set, else ws(s):// + the page's host + `settings.path`. */
export function socketUrl(location, settings) {
  if (settings.url) {
    const scheme = String(settings.url).split(':', 1)[0].toLowerCase();
    if (scheme !== 'ws' && scheme !== 'wss') {
      throw new Error(`txzserver url must be ws:// or wss://, not ${settings.url}`);
    }
    return settings.url;
  }
  const path = String(settings.path || '');
  if (!path.startsWith('/') || path.startsWith('//')) {
    throw new Error(`txzserver path must be a path on this origin, not ${path}`);
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

function cleanPath(path) {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    return null;
  }
  // characters a route must not carry: a backslash or control characters (some browsers read
  // "/\evil.example" as another host), and empty, "." or ".." segments
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  if (/[\\\u0000-\u001f\u007f]/.test(path)) {
    return null;
  }
  const trimmed = path.replace(/\/+$/, '');
  const segments = trimmed.split('/').slice(1);
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    return null;
  }
  return trimmed;
}

/**
 * The Volto route of a site path: `path` below `site` (whole segments), or null when it is
 * not in the site (the toast then shows its title without a link).
 */
export function appPath(path, site) {
  const inner = cleanPath(path);
  const root = site === '/' ? '' : cleanPath(site);
  if (inner === null || root === null) {
    return null;
  }
  if (inner === root) {
    return '/';
  }
  if (!inner.startsWith(`${root}/`)) {
    return null;
  }
  return inner.slice(root.length);
}

/** The site path of a Volto route (the inverse of appPath), or null for a bad route. */
export function sitePath(route, site) {
  const root = site === '/' ? '' : cleanPath(site);
  const inner = route === '/' ? '' : cleanPath(route);
  if (root === null || inner === null) {
    return null;
  }
  return `${root}${inner}` || '/';
}

/** The parent route of a route ('/a/b' -> '/a', '/a' -> '/'). */
export function parentRoute(route) {
  const index = route.lastIndexOf('/');
  return index > 0 ? route.slice(0, index) : '/';
}
