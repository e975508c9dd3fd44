/**
 * The server's messages, read into what the page shows: no React, no browser.
 *
 * Server to client: {"type": "welcome", "instance", "user", "site", "subscriptions"}; events
 * {"type": "created|modified|removed|transition|notification", "path", "uid", "url", "title",
 * "portal_type", "review_state", "actor", "time", "message"}; {"type": "gap", "instance",
 * "missed"} when events were lost on the server's bus; {"type": "status"|"error", ...}
 * answering subscribe and unsubscribe. Client to server: {"action": "subscribe"|"unsubscribe",
 * "path"}. (The backend's docs/notifications.md describes the protocol.)
 */

import { CONTENT_EVENTS } from './settings';
import { appPath, parentRoute, sitePath } from './urls';

/** Volto's toast kinds (Toast's info/success/warning/error flags) per event type. */
export const TOAST_KIND = Object.freeze({
  created: 'success',
  modified: 'info',
  removed: 'warning',
  transition: 'info',
  notification: 'info',
  gap: 'warning',
});

/** The JSON object a frame carries, or null for anything else. */
export function parseMessage(data) {
  if (typeof data !== 'string') {
    return null;
  }
  let message;
  try {
    message = JSON.parse(data);
  } catch (err) {
    return null;
  }
  if (!message || typeof message !== 'object' || typeof message.type !== 'string') {
    return null;
  }
  return message;
}

function text(value) {
  return typeof value === 'string' ? value : '';
}

/**
 * What a message means for the page:
 * - {kind: 'welcome', site, user}
 * - {kind: 'event', type, toast, title, link, message, actor, state, route, uid}: a toast;
 *   `link` the Volto route to open (none for removed content or outside the site), `route`
 *   the content's route even when removed (for refreshing), null outside the site
 * - {kind: 'gap', missed, instance}
 * - {kind: 'log', message}: status and error answers
 * - null: nothing to do (an event type not in `events`, before the welcome named the site,
 *   or a message of an unknown type)
 */
export function describe(message, { site, events = CONTENT_EVENTS } = {}) {
  if (!message) {
    return null;
  }
  const { type } = message;
  if (type === 'welcome') {
    return {
      kind: 'welcome',
      site: typeof message.site === 'string' ? message.site : null,
      user: typeof message.user === 'string' ? message.user : null,
    };
  }
  if (type === 'gap') {
    return {
      kind: 'gap',
      toast: TOAST_KIND.gap,
      missed: Number.isInteger(message.missed) ? message.missed : null,
      instance: text(message.instance),
    };
  }
  if (type === 'status' || type === 'error') {
    return { kind: 'log', message };
  }
  if (!CONTENT_EVENTS.includes(type) || !events.includes(type) || !site) {
    return null;
  }
  const route = appPath(message.path, site);
  return {
    kind: 'event',
    type,
    toast: TOAST_KIND[type],
    title: text(message.title) || text(message.path),
    link: type === 'removed' ? null : route,
    route,
    message: text(message.message),
    actor: text(message.actor),
    state: type === 'transition' ? text(message.review_state) : '',
    uid: text(message.uid),
  };
}

/**
 * Whether an event changed what the page at `pathname` shows: the content itself (not when it
 * was removed: there is nothing to load) or, for created and removed content, an item of it.
 * Never while the page is a form or another view of the content (`/edit`, `/contents`...):
 * `pathname` must be the content's own route. Not for the user's own edits (`user`), which
 * Volto has already loaded.
 */
export function changesPage(event, pathname, user) {
  if (!event || event.kind !== 'event' || !event.route || !pathname) {
    return false;
  }
  if (user && event.actor === user) {
    return false;
  }
  const current = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  if (event.type === 'created' || event.type === 'removed') {
    return event.route !== '/' && parentRoute(event.route) === current;
  }
  return event.type !== 'notification' && event.route === current;
}

/**
 * The messages that narrow a new connection (subscribed to its whole site) to `routes`
 * (Volto routes): subscribe to each, then drop the site itself. None for no routes or '/'.
 */
export function subscriptionMessages(site, routes) {
  const paths = (routes || [])
    .map((route) => sitePath(route, site))
    .filter((path) => path !== null);
  if (!site || paths.length === 0 || paths.includes(site)) {
    return [];
  }
  return [
    ...paths.map((path) => ({ action: 'subscribe', path })),
    { action: 'unsubscribe', path: site },
  ];
}
