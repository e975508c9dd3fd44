/**
 * volto-txzserver: live notifications from a txzserver backend, as Volto toasts.
 *
 * Volto calls the default export with its configuration when the add-on is listed in the
 * project's `addons`.
 */

import LiveNotifications from './components/LiveNotifications';
import { DEFAULTS } from './settings';

export { DEFAULTS } from './settings';
export { default as LiveClient } from './client';
export { default as LiveNotifications } from './components/LiveNotifications';

export default function applyConfig(config) {
  config.settings.txzserver = { ...DEFAULTS, ...(config.settings.txzserver || {}) };
  // First in the list: Volto keys the active app extras by their position among those that
  // match the route, so an entry placed before ours that matches only some routes would make
  // React mount ours anew (a new connection, events lost meanwhile) on every such navigation.
  config.settings.appExtras = [
    { match: '', component: LiveNotifications },
    ...(config.settings.appExtras || []),
  ];
  return config;
}
