import React from 'react';
import TestRenderer, { act } from 'react-test-renderer';
import { IntlProvider } from 'react-intl';
import { Provider } from 'react-redux';
import { MemoryRouter } from 'react-router-dom';
import { createStore } from 'redux';
import { toast } from 'react-toastify';
import config from '@plone/volto/registry';

import applyConfig from '../src';
import LiveNotifications, { GAP_TOAST_ID } from '../src/components/LiveNotifications';
import { DEFAULTS } from '../src/settings';
import { FakeClock, FakeSocket, fakeEnv } from './fakes';
import { catalog } from './po';

jest.mock('react-toastify', () => {
  const active = new Set();
  const toast = jest.fn();
  for (const kind of ['info', 'success', 'warning', 'error']) {
    // a container that renders each toast at once: it opens (onOpen) when it is asked for
    toast[kind] = jest.fn((content, options = {}) => {
      if (options.toastId) active.add(options.toastId);
      if (options.onOpen) options.onOpen();
    });
  }
  toast.isActive = jest.fn((id) => active.has(id));
  toast.dismissAll = () => active.clear();
  return { toast };
});

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

function reducer(state = { userSession: { token: null }, actions: [] }, action) {
  if (action.type === 'LOGIN') {
    return { ...state, userSession: { token: action.token } };
  }
  return { ...state, actions: [...state.actions, action] };
}

let clock;
let env;

function mount({ token = 'jwt', pathname = '/news/item', locale = 'en', messages } = {}) {
  const store = createStore(reducer, { userSession: { token }, actions: [] });
  let renderer;
  act(() => {
    renderer = TestRenderer.create(
      <Provider store={store}>
        <IntlProvider locale={locale} messages={messages}>
          <MemoryRouter initialEntries={[pathname]}>
            <LiveNotifications txzserverEnv={env} />
          </MemoryRouter>
        </IntlProvider>
      </Provider>,
    );
  });
  return { store, renderer };
}

/** Render what was handed to toast.<kind>() as the user sees it: title, text, links. */
function shown(kind, index = 0, { locale = 'en', messages } = {}) {
  const element = toast[kind].mock.calls[index][0];
  const renderer = TestRenderer.create(
    <IntlProvider locale={locale} messages={messages}>
      <MemoryRouter>{element}</MemoryRouter>
    </IntlProvider>,
  );
  const root = renderer.root;
  const text = (node) =>
    typeof node === 'string' ? node : (node.children || []).map(text).join('');
  return {
    title: root.findByType('h4').children.join(''),
    text: text(root),
    links: root.findAllByType('a').map((a) => a.props.href),
    flags: element.props,
    options: toast[kind].mock.calls[index][1],
  };
}

beforeEach(() => {
  FakeSocket.reset();
  jest.clearAllMocks();
  toast.dismissAll();
  config.settings = {};
  applyConfig(config);
  clock = new FakeClock();
  env = { ...fakeEnv(clock), location: { protocol: 'https:', host: 'volto.example.org' } };
});

const item = {
  path: '/Plone/news/item',
  uid: 'u1',
  url: 'http://instance1:8080/Plone/news/item',
  title: 'Item',
  portal_type: 'Document',
  review_state: 'private',
  actor: 'eddie',
  time: '2026-12-07T09:00:00Z',
  message: '',
};

describe('applyConfig', () => {
  it('puts the component first in appExtras (a stable key on every route), and the defaults', () => {
    const result = applyConfig({ settings: { appExtras: [{ match: '/x' }], txzserver: { refreshContent: true } } });
    expect(result.settings.appExtras).toEqual([
      { match: '', component: LiveNotifications },
      { match: '/x' },
    ]);
    expect(result.settings.txzserver).toEqual({ ...DEFAULTS, refreshContent: true });
  });
});

describe('LiveNotifications', () => {
  it('connects to the endpoint on the page origin when logged in', () => {
    mount();
    expect(FakeSocket.instances.map((s) => s.url)).toEqual(['wss://volto.example.org/++api++/ws']);
  });

  it('does not connect for anonymous visitors unless asked to', () => {
    mount({ token: null });
    expect(FakeSocket.instances).toHaveLength(0);
    config.settings.txzserver.anonymous = true;
    mount({ token: null });
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it('shows a toast per content event, linked to the Volto route', () => {
    mount();
    const socket = FakeSocket.last;
    act(() => {
      socket.welcome();
      socket.serverSend({ ...item, type: 'created' });
      socket.serverSend({ ...item, type: 'modified' });
      socket.serverSend({ ...item, type: 'removed' });
      socket.serverSend({ ...item, type: 'transition', review_state: 'pending' });
      socket.serverSend({ ...item, type: 'notification', message: 'Please review Item' });
    });
    const created = shown('success');
    expect(created.title).toBe('Content created');
    expect(created.links).toEqual(['/news/item']);
    expect(created.text).toContain('by eddie');
    expect(created.flags.success).toBe(true);
    expect(created.options).toEqual({ autoClose: 10000, onOpen: expect.any(Function) });

    const [modified, transition, notification] = [0, 1, 2].map((i) => shown('info', i));
    expect(modified.title).toBe('Content modified');
    expect(transition.title).toBe('Workflow state: Pending review');
    expect(transition.links).toEqual(['/news/item']);
    expect(notification.title).toBe('Notification');
    expect(notification.text).toContain('Please review Item');

    const removed = shown('warning');
    expect(removed.title).toBe('Content removed');
    expect(removed.links).toEqual([]);
    expect(removed.text).toContain('Item');
  });

  it('shows only the configured event types', () => {
    config.settings.txzserver.events = ['transition'];
    mount();
    act(() => {
      FakeSocket.last.welcome();
      FakeSocket.last.serverSend({ ...item, type: 'modified' });
      FakeSocket.last.serverSend({ ...item, type: 'transition' });
    });
    expect(toast.info).toHaveBeenCalledTimes(1);
    expect(shown('info').title).toBe('Workflow state: Private');
  });

  it('names a state of another workflow by its id', () => {
    mount();
    act(() => {
      FakeSocket.last.welcome();
      FakeSocket.last.serverSend({ ...item, type: 'transition', review_state: 'in_translation' });
    });
    expect(shown('info').title).toBe('Workflow state: in_translation');
  });

  it('shows one "some updates were missed" toast at a time, with a reload button', () => {
    mount();
    act(() => {
      FakeSocket.last.welcome();
      FakeSocket.last.serverSend({ type: 'gap', instance: 'alpha', missed: 2 });
      FakeSocket.last.serverSend({ type: 'gap', instance: 'beta', missed: 1 });
    });
    expect(toast.warning).toHaveBeenCalledTimes(1);
    const gap = shown('warning');
    expect(gap.title).toBe('Some updates were missed');
    expect(gap.text).toContain('Reload');
    expect(gap.options).toEqual({
      toastId: GAP_TOAST_ID,
      autoClose: false,
      onOpen: expect.any(Function),
    });
  });

  it('translates the toasts (German, Finnish)', () => {
    for (const [locale, title, by] of [
      ['de', 'Status geändert: Zur Redaktion eingereicht', 'von eddie'],
      ['fi', 'Työnkulun tila: Odottaa tarkastusta', 'tekijä: eddie'],
    ]) {
      jest.clearAllMocks();
      FakeSocket.reset();
      const messages = catalog(locale);
      mount({ locale, messages });
      act(() => {
        FakeSocket.last.welcome();
        FakeSocket.last.serverSend({ ...item, type: 'transition', review_state: 'pending' });
      });
      const toastShown = shown('info', 0, { locale, messages });
      expect(toastShown.title).toBe(title);
      expect(toastShown.text).toContain(by);
    }
  });

  it('refreshes the shown content when it changed, if asked to', () => {
    config.settings.txzserver.refreshContent = true;
    const { store } = mount({ pathname: '/news/item' });
    act(() => {
      FakeSocket.last.welcome();
      FakeSocket.last.serverSend({ ...item, type: 'modified' });
      FakeSocket.last.serverSend({ ...item, type: 'modified', path: '/Plone/other' });
      FakeSocket.last.serverSend({ ...item, type: 'modified', actor: 'rita' }); // own edit
    });
    const loads = store.getState().actions.filter((a) => a.type === 'GET_CONTENT');
    expect(loads).toEqual([{ type: 'GET_CONTENT', url: '/news/item' }]);
  });

  it('does not refresh by default', () => {
    const { store } = mount({ pathname: '/news/item' });
    act(() => {
      FakeSocket.last.welcome();
      FakeSocket.last.serverSend({ ...item, type: 'modified' });
    });
    expect(store.getState().actions.filter((a) => a.type === 'GET_CONTENT')).toEqual([]);
  });

  it('reconnects when the session token changes, and closes on unmount', () => {
    const { store, renderer } = mount();
    const first = FakeSocket.last;
    act(() => first.welcome());
    act(() => store.dispatch({ type: 'LOGIN', token: 'another-jwt' }));
    expect(first.closedWith).toBe(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    act(() => store.dispatch({ type: 'LOGIN', token: null })); // logged out: no connection
    expect(FakeSocket.last.closedWith).toBe(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    act(() => store.dispatch({ type: 'LOGIN', token: 'jwt' }));
    expect(FakeSocket.instances).toHaveLength(3);
    act(() => renderer.unmount());
    expect(FakeSocket.last.closedWith).toBe(1000);
    clock.advance(60000);
    expect(FakeSocket.instances).toHaveLength(3);
  });
});
