/**
 * The add-on's settings: `config.settings.txzserver`, merged over these defaults.
 *
 * Each default is written here only; the README's table is this object explained.
 */

export const CONTENT_EVENTS = Object.freeze([
  'created',
  'modified',
  'removed',
  'transition',
  'notification',
]);

export const DEFAULTS = Object.freeze({
  /** The endpoint's path on the page's own origin; the front sends it to the instances. */
  path: '/++api++/ws',
  /** A whole ws:// or wss:// URL instead of `path` (development: the backend directly). */
  url: '',
  /** Site paths to follow, as Volto routes ('/news'); empty: the whole site. */
  paths: Object.freeze([]),
  /** Connect for anonymous visitors too (Classic UI's toasts are for logged-in users). */
  anonymous: false,
  /** Which event types become toasts. */
  events: CONTENT_EVENTS,
  /** Load the shown content again when an event changed it (or its items). */
  refreshContent: false,
  /** How long a toast stays, in milliseconds (false: until closed). */
  autoClose: 10000,
  /** Reconnect delays in milliseconds: doubling from `minDelay` up to `maxDelay`, jittered. */
  minDelay: 1000,
  maxDelay: 30000,
  /**
   * The least delay after a handshake that never opened, in milliseconds: the server answers an
   * overloaded handshake 503 with Retry-After: 5, which a browser's WebSocket cannot read.
   */
  refusedDelay: 5000,
});

/** The effective settings: DEFAULTS overridden by `config.settings.txzserver`. */
export function txzserverSettings(settings) {
  const own = (settings && settings.txzserver) || {};
  const merged = { ...DEFAULTS };
  Object.keys(DEFAULTS).forEach((key) => {
    if (own[key] !== undefined && own[key] !== null) {
      merged[key] = own[key];
    }
  });
  return merged;
}
