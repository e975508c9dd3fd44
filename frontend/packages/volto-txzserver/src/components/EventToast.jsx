/** The content of a toast: the content's title (a link to its Volto route), message, actor. */

import React from 'react';
import { useIntl } from 'react-intl';
import { Link } from 'react-router-dom';

import messages from '../messages';

const EventToast = ({ event }) => {
  const intl = useIntl();
  return (
    <div className={`txzserver-toast txzserver-toast-${event.type}`} data-uid={event.uid || undefined}>
      {event.link ? (
        <Link className="txzserver-toast-title" to={event.link}>
          {event.title}
        </Link>
      ) : (
        <span className="txzserver-toast-title">{event.title}</span>
      )}
      {event.message && <div className="txzserver-toast-message">{event.message}</div>}
      {event.actor && (
        <div className="txzserver-toast-actor">
          {intl.formatMessage(messages.byActor, { actor: event.actor })}
        </div>
      )}
    </div>
  );
};

export const GapToast = () => {
  const intl = useIntl();
  return (
    <div className="txzserver-toast txzserver-toast-gap">
      <div>{intl.formatMessage(messages.gapHint)}</div>
      <button
        type="button"
        className="txzserver-toast-reload ui basic primary button"
        onClick={() => window.location.reload()}
      >
        {intl.formatMessage(messages.reload)}
      </button>
    </div>
  );
};

export default EventToast;
