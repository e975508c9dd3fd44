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
  config.settings.appExtras = [
    ...(config.settings.appExtras || []),
    { match: '', component: LiveNotifications },
  ];
  return config;
}
