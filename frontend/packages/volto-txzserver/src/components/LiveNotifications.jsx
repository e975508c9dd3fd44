/**
 * The app-extras component: one live connection per page while it is mounted, its events shown
 * as Volto toasts. Renders nothing itself.
 *
 * It reconnects when the Volto session's token changes (login, logout, renewal): the browser
 * sends the new cookies with the next handshake.
 */

import React, { useEffect, useRef } from 'react';
import { useIntl } from 'react-intl';
import { useDispatch, useSelector } from 'react-redux';
import { useLocation } from 'react-router-dom';
import { toast } from 'react-toastify';
import config from '@plone/volto/registry';
import Toast from '@plone/volto/components/manage/Toast/Toast';
import { getContent } from '@plone/volto/actions';

import LiveClient from '../client';
import { changesPage } from '../events';
import { txzserverSettings } from '../settings';
import { socketUrl } from '../urls';
import ToastQueue from '../toastqueue';
import EventToast, { GapToast } from './EventToast';
import messages, { STATES, TITLES } from '../messages';

export const GAP_TOAST_ID = 'txzserver-gap';

function toastFlags(kind) {
  return { [kind]: true };
}

/** Toast title of an event description (translated). */
export function eventTitle(intl, event) {
  if (event.type === 'transition' && event.state) {
    const state = STATES[event.state];
    return intl.formatMessage(messages.transitionTo, {
      state: state ? intl.formatMessage(state) : event.state,
    });
  }
  return intl.formatMessage(TITLES[event.type]);
}

/**
 * `txzserverEnv` (tests): {WebSocket, setTimeout, clearTimeout, random, log, location} instead
 * of the browser's; AppExtras hands the component the App's props, hence the unusual name.
 */
const LiveNotifications = ({ txzserverEnv: env }) => {
  const intl = useIntl();
  const dispatch = useDispatch();
  const location = useLocation();
  const token = useSelector((state) => state.userSession && state.userSession.token);
  const settings = txzserverSettings(config.settings);
  const active = Boolean(token) || settings.anonymous;

  // what the long-lived socket callback reads: the latest render's values
  const current = useRef({});
  current.current = { intl, dispatch, pathname: location.pathname, settings, token };

  const clientRef = useRef(null);
  const clientToken = useRef(null); // the token of the session the client's handshakes carry

  useEffect(() => {
    const location =
      (env && env.location) || (typeof window !== 'undefined' ? window.location : null);
    if (!active || !location) {
      return undefined;
    }
    const { settings: initial } = current.current;
    let url;
    try {
      url = socketUrl(location, initial);
    } catch (err) {
      globalThis.console.error('txzserver:', err.message);
      return undefined;
    }
    const onEvent = (description, client) => {
      const { intl, dispatch, pathname, settings } = current.current;
      if (description.kind === 'event') {
        queue.show(
          toast[description.toast],
          <Toast
            {...toastFlags(description.toast)}
            title={eventTitle(intl, description)}
            content={<EventToast event={description} />}
          />,
          { autoClose: settings.autoClose },
        );
        if (settings.refreshContent && changesPage(description, pathname, client.user)) {
          dispatch(getContent(pathname));
        }
      } else if (description.kind === 'gap') {
        // several instances' gaps after a broker restart say one thing: one toast at a time
        if (!toast.isActive(GAP_TOAST_ID)) {
          queue.show(
            toast.warning,
            <Toast warning title={intl.formatMessage(messages.gap)} content={<GapToast />} />,
            { toastId: GAP_TOAST_ID, autoClose: false },
          );
        }
      }
    };
    // one toast at a time into Volto's container (why: ../toastqueue.js)
    const queue = new ToastQueue(env || window);
    const client = new LiveClient({ url, settings: initial, onEvent, env });
    clientToken.current = current.current.token;
    clientRef.current = client;
    client.start();
    return () => {
      client.stop();
      queue.clear();
      clientRef.current = null;
    };
  }, [active, env]);

  // a new token (login as someone else, renewal): the next handshake carries new cookies
  useEffect(() => {
    if (clientRef.current && clientToken.current !== token) {
      clientToken.current = token;
      clientRef.current.reconnect();
    }
  }, [token]);

  return null;
};

export default LiveNotifications;
