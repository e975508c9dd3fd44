/**
 * One live connection to the server: opens the WebSocket, reads its messages, narrows its
 * subscriptions after the welcome, and reconnects after every close it did not ask for.
 * No React: the component hands it a callback, and the tests a fake WebSocket and clock.
 *
 * Authentication is the handshake's: the browser sends this origin's cookies with it (Plone's
 * __ac session cookie, which plone.restapi's @login sets beside the token Volto keeps in its
 * auth_token cookie). A login or logout in Volto changes them: the component calls
 * `reconnect()` then, so the next handshake speaks for the new user.
 */

import { afterClose } from './backoff';
import { describe, parseMessage, subscriptionMessages } from './events';

export default class LiveClient {
  /**
   * `url`: the WebSocket URL; `settings`: txzserverSettings(); `onEvent(description)`: every
   * described message (see events.describe), welcome included; `env`: {WebSocket,
   * setTimeout, clearTimeout, random, log}, the browser's by default.
   */
  constructor({ url, settings, onEvent, env = {} }) {
    this.url = url;
    this.settings = settings;
    this.onEvent = onEvent;
    this.env = {
      WebSocket: env.WebSocket || globalThis.WebSocket,
      setTimeout: env.setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms)),
      clearTimeout: env.clearTimeout || ((id) => globalThis.clearTimeout(id)),
      random: env.random || Math.random,
      log: env.log || ((...args) => globalThis.console.debug('txzserver:', ...args)),
    };
    this.socket = null;
    this.timer = null;
    this.attempt = 0;
    this.stopped = true;
    /** The welcome's site path and user id, while connected. */
    this.site = null;
    this.user = null;
  }

  get connected() {
    return this.site !== null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  /** Close for good (the component unmounts). */
  stop() {
    this.stopped = true;
    this.cancelTimer();
    this.closeSocket();
  }

  /** Close and open again at once: the page's credentials changed. */
  reconnect() {
    this.cancelTimer();
    this.closeSocket();
    this.attempt = 0;
    if (!this.stopped) {
      this.open();
    }
  }

  send(message) {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify(message));
    }
  }

  // internals

  cancelTimer() {
    if (this.timer !== null) {
      this.env.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  closeSocket() {
    const socket = this.socket;
    this.socket = null;
    this.site = null;
    this.user = null;
    if (socket) {
      socket.byClient = true;
      try {
        socket.close(1000);
      } catch (err) {
        // already closing
      }
    }
  }

  open() {
    if (this.stopped || this.socket || !this.env.WebSocket) {
      return;
    }
    let socket;
    try {
      socket = new this.env.WebSocket(this.url);
    } catch (err) {
      this.env.log('cannot open the WebSocket', err);
      this.schedule({ code: 1006, opened: false });
      return;
    }
    this.socket = socket;
    // "opened" means welcomed: a socket the server closes before its welcome (a handshake it
    // refused after all, a policy close) counts as a failed attempt, so the schedule grows
    socket.opened = false;
    socket.onmessage = (frame) => {
      if (this.socket === socket) {
        this.receive(frame.data, socket);
      }
    };
    socket.onclose = (close) => {
      if (this.socket === socket) {
        this.socket = null;
        this.site = null;
        this.user = null;
      }
      if (!socket.byClient) {
        this.schedule({ code: close && close.code, opened: socket.opened });
      }
    };
  }

  schedule(close) {
    const plan = afterClose(close, this.attempt, this.settings, this.env.random);
    this.attempt = plan.attempt;
    if (!plan.reconnect || this.stopped || this.timer !== null) {
      return;
    }
    this.env.log(`closed (${close.code}), reconnecting in ${Math.round(plan.delay)} ms`);
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      this.open();
    }, plan.delay);
  }

  receive(data, socket) {
    const message = parseMessage(data);
    if (!message) {
      this.env.log('ignoring a message that is not a JSON object', data);
      return;
    }
    const description = describe(message, { site: this.site, events: this.settings.events });
    if (!description) {
      return;
    }
    if (description.kind === 'welcome') {
      socket.opened = true;
      this.site = description.site;
      this.user = description.user;
      this.attempt = 0;
      subscriptionMessages(this.site, this.settings.paths).forEach((m) => this.send(m));
    } else if (description.kind === 'log') {
      this.env.log(message.type, message);
      return;
    }
    this.onEvent(description, this);
  }
}
