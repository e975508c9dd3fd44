/**
 * The add-on's texts, for Volto's i18n: `pnpm i18n` in a Volto project collects them into its
 * locales; this package ships its own in locales/<lang>/LC_MESSAGES/volto.po (en, de, fi).
 */

import { defineMessages } from 'react-intl';

const messages = defineMessages({
  created: {
    id: 'Content created',
    defaultMessage: 'Content created',
  },
  modified: {
    id: 'Content modified',
    defaultMessage: 'Content modified',
  },
  removed: {
    id: 'Content removed',
    defaultMessage: 'Content removed',
  },
  transition: {
    id: 'Workflow state changed',
    defaultMessage: 'Workflow state changed',
  },
  transitionTo: {
    id: 'Workflow state: {state}',
    defaultMessage: 'Workflow state: {state}',
  },
  notification: {
    id: 'Notification',
    defaultMessage: 'Notification',
  },
  byActor: {
    id: 'by {actor}',
    defaultMessage: 'by {actor}',
  },
  gap: {
    id: 'Some updates were missed',
    defaultMessage: 'Some updates were missed',
  },
  gapHint: {
    id: 'Reload the page to see the latest content.',
    defaultMessage: 'Reload the page to see the latest content.',
  },
  reload: {
    id: 'Reload',
    defaultMessage: 'Reload',
  },
});

export default messages;

/** The title message of each event type. */
export const TITLES = {
  created: messages.created,
  modified: messages.modified,
  removed: messages.removed,
  transition: messages.transition,
  notification: messages.notification,
};
