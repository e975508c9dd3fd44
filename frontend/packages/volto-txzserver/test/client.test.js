import LiveClient from '../src/client';
import { DEFAULTS } from '../src/settings';
import { FakeClock, FakeSocket, fakeEnv } from './fakes';

function started(settings = {}, random) {
  FakeSocket.reset();
  const clock = new FakeClock();
  const seen = [];
  const client = new LiveClient({
    url: 'wss://h.example/++api++/ws',
    settings: { ...DEFAULTS, ...settings },
    onEvent: (d) => seen.push(d),
    env: fakeEnv(clock, random),
  });
  client.start();
  return { client, clock, seen };
}

describe('LiveClient', () => {
  it('opens the URL, learns its site from the welcome, and hands on events', () => {
    const { client, seen } = started();
    const socket = FakeSocket.last;
    expect(socket.url).toBe('wss://h.example/++api++/ws');
    expect(client.connected).toBe(false);
    socket.welcome();
    expect(client.connected).toBe(true);
    expect(client.site).toBe('/Plone');
    expect(client.user).toBe('rita');
    socket.serverSend({ type: 'transition', path: '/Plone/doc', title: 'Doc', review_state: 'pending' });
    socket.serverSend('garbage');
    socket.serverSend({ type: 'status', subscriptions: [] });
    expect(seen.map((d) => d.kind)).toEqual(['welcome', 'event']);
    expect(seen[1]).toMatchObject({ type: 'transition', link: '/doc', state: 'pending' });
  });

  it('ignores events before the welcome (no site to map them to)', () => {
    const { seen } = started();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverSend({ type: 'created', path: '/Plone/doc', title: 'Doc' });
    expect(seen).toEqual([]);
  });

  it('narrows its subscriptions after the welcome', () => {
    started({ paths: ['/news'] });
    FakeSocket.last.welcome();
    expect(FakeSocket.last.sent).toEqual([
      { action: 'subscribe', path: '/Plone/news' },
      { action: 'unsubscribe', path: '/Plone' },
    ]);
  });

  it('reconnects with growing delays while handshakes fail, from the start after a success', () => {
    const { clock } = started({}, () => 0);
    const delays = [];
    for (let i = 0; i < 6; i += 1) {
      FakeSocket.last.serverClose(1006);
      delays.push(clock.pending);
      clock.advance(clock.pending);
    }
    expect(delays).toEqual([5000, 5000, 5000, 5000, 8000, 15000]);
    expect(FakeSocket.instances).toHaveLength(7);
    FakeSocket.last.welcome();
    FakeSocket.last.serverClose(1001);
    expect(clock.pending).toBe(500);
  });

  it('comes back quickly after 4001 (authenticate again)', () => {
    const { clock, client } = started({}, () => 0.5);
    FakeSocket.last.welcome();
    FakeSocket.last.serverClose(4001);
    expect(client.connected).toBe(false);
    expect(clock.pending).toBe(500);
    clock.advance(500);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('reconnect() replaces the socket at once; stop() ends it for good', () => {
    const { clock, client } = started();
    const first = FakeSocket.last;
    first.welcome();
    client.reconnect();
    expect(first.closedWith).toBe(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    first.serverClose(1000); // the old socket's close event arrives later: no second socket
    expect(clock.pending).toBeNull();
    client.stop();
    expect(FakeSocket.last.closedWith).toBe(1000);
    FakeSocket.last.serverClose(1000);
    clock.advance(60000);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('stop() cancels a pending reconnect', () => {
    const { clock, client } = started();
    FakeSocket.last.serverClose(1006);
    expect(clock.pending).not.toBeNull();
    client.stop();
    clock.advance(60000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it('retries when the WebSocket cannot even be built', () => {
    FakeSocket.reset();
    const clock = new FakeClock();
    let calls = 0;
    function Broken() {
      calls += 1;
      throw new Error('SecurityError');
    }
    const client = new LiveClient({
      url: 'ws://x/ws',
      settings: DEFAULTS,
      onEvent: () => {},
      env: { ...fakeEnv(clock), WebSocket: Broken },
    });
    client.start();
    expect(calls).toBe(1);
    clock.advance(clock.pending);
    expect(calls).toBe(2);
    client.stop();
  });
});

describe('LiveClient and a server that closes before its welcome', () => {
  it('counts such a socket as a failed attempt: the delays grow', () => {
    const { clock } = started({}, () => 0);
    const delays = [];
    for (let i = 0; i < 6; i += 1) {
      FakeSocket.last.serverOpen();
      FakeSocket.last.serverClose(1008);
      delays.push(clock.pending);
      clock.advance(clock.pending);
    }
    expect(delays).toEqual([5000, 5000, 5000, 5000, 8000, 15000]);
  });
});
