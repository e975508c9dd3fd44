// A fake WebSocket and clock for the client and component tests.

export class FakeSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.instances.push(this);
  }

  static reset() {
    FakeSocket.instances = [];
  }

  static get last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }

  send(data) {
    this.sent.push(JSON.parse(data));
  }

  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }

  // what the server does
  serverOpen() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }

  serverSend(message) {
    this.onmessage && this.onmessage({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }

  serverClose(code) {
    this.readyState = 3;
    this.onclose && this.onclose({ code });
  }

  welcome(fields = {}) {
    this.serverOpen();
    this.serverSend({ type: 'welcome', instance: 'alpha', user: 'rita', site: '/Plone', subscriptions: ['/Plone'], ...fields });
  }
}

export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.next++;
      this.timers.set(id, { fn, at: this.now + ms });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** The delay of the one pending timer. */
  get pending() {
    const [timer] = [...this.timers.values()];
    return timer ? timer.at - this.now : null;
  }

  advance(ms) {
    this.now += ms;
    for (const [id, timer] of [...this.timers.entries()].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= this.now) {
        this.timers.delete(id);
        timer.fn();
      }
    }
  }
}

export function fakeEnv(clock, random = () => 0.5) {
  return {
    WebSocket: FakeSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random,
    log: () => {},
  };
}
