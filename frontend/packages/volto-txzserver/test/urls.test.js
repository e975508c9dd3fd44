import { appPath, parentRoute, sitePath, socketUrl } from '../src/urls';
import { DEFAULTS } from '../src/settings';

describe('socketUrl', () => {
  it('uses the page origin, wss for https, and the default path', () => {
    expect(socketUrl({ protocol: 'https:', host: 'www.example.org' }, DEFAULTS)).toBe(
      'wss://www.example.org/++api++/ws',
    );
    expect(socketUrl({ protocol: 'http:', host: 'localhost:3000' }, DEFAULTS)).toBe(
      'ws://localhost:3000/++api++/ws',
    );
  });

  it('takes another path on the origin, or a whole ws URL', () => {
    const location = { protocol: 'https:', host: 'h.example' };
    expect(socketUrl(location, { ...DEFAULTS, path: '/Plone/ws' })).toBe('wss://h.example/Plone/ws');
    expect(socketUrl(location, { ...DEFAULTS, url: 'ws://localhost:8080/Plone/ws' })).toBe(
      'ws://localhost:8080/Plone/ws',
    );
  });

  it('refuses what is not a path on the origin or not a ws URL', () => {
    const location = { protocol: 'https:', host: 'h.example' };
    expect(() => socketUrl(location, { ...DEFAULTS, path: '//evil.example/ws' })).toThrow();
    expect(() => socketUrl(location, { ...DEFAULTS, path: 'ws' })).toThrow();
    expect(() => socketUrl(location, { ...DEFAULTS, url: 'https://h.example/ws' })).toThrow();
    expect(() => socketUrl(location, { ...DEFAULTS, url: 'javascript:alert(1)' })).toThrow();
  });
});

describe('appPath: an event path as a Volto route', () => {
  it('drops the site path, whole segments only', () => {
    expect(appPath('/Plone/news/item', '/Plone')).toBe('/news/item');
    expect(appPath('/Plone', '/Plone')).toBe('/');
    expect(appPath('/Plone/', '/Plone')).toBe('/');
    expect(appPath('/Plone2/news', '/Plone')).toBeNull();
    expect(appPath('/Other/news', '/Plone')).toBeNull();
  });

  it('works for a site at the Zope root and for nested sites', () => {
    expect(appPath('/news', '/')).toBe('/news');
    expect(appPath('/corp/Plone/a', '/corp/Plone')).toBe('/a');
  });

  it('refuses paths that could leave the route space', () => {
    for (const bad of [
      '/Plone//evil.example',
      '/Plone/../x',
      '/Plone/./x',
      '/Plone/\\evil.example',
      '/Plone/a\nb',
      'javascript:alert(1)',
      'https://evil.example/Plone/a',
      '',
      null,
      undefined,
      42,
    ]) {
      expect(appPath(bad, '/Plone')).toBeNull();
    }
    expect(appPath('/Plone/a', null)).toBeNull();
    expect(appPath('/Plone/a', 'Plone')).toBeNull();
  });
});

describe('sitePath and parentRoute', () => {
  it('map a route back into the site', () => {
    expect(sitePath('/news', '/Plone')).toBe('/Plone/news');
    expect(sitePath('/', '/Plone')).toBe('/Plone');
    expect(sitePath('/news/', '/Plone')).toBe('/Plone/news');
    expect(sitePath('/news', '/')).toBe('/news');
    expect(sitePath('news', '/Plone')).toBeNull();
    expect(sitePath('/a/../b', '/Plone')).toBeNull();
  });

  it('gives the parent route', () => {
    expect(parentRoute('/a/b')).toBe('/a');
    expect(parentRoute('/a')).toBe('/');
  });
});
