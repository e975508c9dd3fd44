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
  // the states of Plone's own workflows (simple publication, intranet, Plone's old default),
  // by the titles Plone gives them; events carry the state's id only
  state_private: {
    id: 'Private',
    defaultMessage: 'Private',
  },
  state_pending: {
    id: 'Pending review',
    defaultMessage: 'Pending review',
  },
  state_published: {
    id: 'Published',
    defaultMessage: 'Published',
  },
  state_visible: {
    id: 'Public draft',
    defaultMessage: 'Public draft',
  },
  state_internal: {
    id: 'Internal draft',
    defaultMessage: 'Internal draft',
  },
  state_internally_published: {
    id: 'Internally published',
    defaultMessage: 'Internally published',
  },
  state_external: {
    id: 'Externally visible',
    defaultMessage: 'Externally visible',
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

/**
 * The title message of each workflow state id of Plone's own workflows; a state of another
 * workflow is shown by its id.
 */
export const STATES = {
  private: messages.state_private,
  pending: messages.state_pending,
  published: messages.state_published,
  visible: messages.state_visible,
  internal: messages.state_internal,
  internally_published: messages.state_internally_published,
  external: messages.state_external,
};
