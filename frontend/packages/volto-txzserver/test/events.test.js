import {
  changesPage,
  describe as describeMessage,
  parseMessage,
  subscriptionMessages,
} from '../src/events';
import { CONTENT_EVENTS } from '../src/settings';

const site = '/Plone';
const event = (fields) => ({
  type: 'modified',
  path: '/Plone/news/item',
  uid: 'abc',
  url: 'https://instance1:8080/Plone/news/item',
  title: 'Item',
  portal_type: 'Document',
  review_state: 'private',
  actor: 'eddie',
  time: '2026-12-07T09:00:00Z',
  message: '',
  ...fields,
});

describe('parseMessage', () => {
  it('reads JSON objects with a type and nothing else', () => {
    expect(parseMessage('{"type": "gap", "missed": 2}')).toEqual({ type: 'gap', missed: 2 });
    expect(parseMessage('not json')).toBeNull();
    expect(parseMessage('[1, 2]')).toBeNull();
    expect(parseMessage('{"no": "type"}')).toBeNull();
    expect(parseMessage('null')).toBeNull();
    expect(parseMessage(new ArrayBuffer(2))).toBeNull();
  });
});

describe('describe', () => {
  it('reads the welcome', () => {
    const welcome = { type: 'welcome', instance: 'alpha', user: 'rita', site, subscriptions: [site] };
    expect(describeMessage(welcome)).toEqual({ kind: 'welcome', site, user: 'rita' });
    expect(describeMessage({ type: 'welcome', user: null, site })).toEqual({
      kind: 'welcome',
      site,
      user: null,
    });
  });

  it('makes a toast of each content event, linked to its Volto route', () => {
    for (const type of CONTENT_EVENTS) {
      const d = describeMessage(event({ type }), { site });
      expect(d.kind).toBe('event');
      expect(d.type).toBe(type);
      expect(d.title).toBe('Item');
      expect(d.route).toBe('/news/item');
      expect(d.link).toBe(type === 'removed' ? null : '/news/item');
    }
    expect(describeMessage(event({ type: 'created' }), { site }).toast).toBe('success');
    expect(describeMessage(event({ type: 'removed' }), { site }).toast).toBe('warning');
  });

  it('never links to the event url', () => {
    const d = describeMessage(event({ url: 'javascript:alert(1)', path: '/Plone/a' }), { site });
    expect(d.link).toBe('/a');
    const outside = describeMessage(event({ path: '/Plone2/a' }), { site });
    expect(outside.link).toBeNull();
    expect(outside.title).toBe('Item');
  });

  it('carries the workflow state of transitions and content-rule messages', () => {
    const t = describeMessage(event({ type: 'transition', review_state: 'pending' }), { site });
    expect(t.state).toBe('pending');
    expect(describeMessage(event({ review_state: 'pending' }), { site }).state).toBe('');
    const n = describeMessage(
      event({ type: 'notification', message: 'Please review Item' }),
      { site },
    );
    expect(n.message).toBe('Please review Item');
  });

  it('falls back to the path for an untitled item and drops non-string fields', () => {
    const d = describeMessage(event({ title: '', actor: 7, message: { x: 1 } }), { site });
    expect(d.title).toBe('/Plone/news/item');
    expect(d.actor).toBe('');
    expect(d.message).toBe('');
  });

  it('shows only the configured event types, and none before the welcome', () => {
    expect(describeMessage(event({}), { site, events: ['transition'] })).toBeNull();
    expect(describeMessage(event({}), { site: null })).toBeNull();
    expect(describeMessage(event({ type: 'bogus' }), { site })).toBeNull();
  });

  it('reads gaps, and status and error answers as log lines', () => {
    expect(describeMessage({ type: 'gap', instance: 'alpha', missed: 2 })).toEqual({
      kind: 'gap',
      toast: 'warning',
      instance: 'alpha',
      missed: 2,
    });
    expect(describeMessage({ type: 'error', message: 'bad' }).kind).toBe('log');
    expect(describeMessage({ type: 'status' }).kind).toBe('log');
  });
});

describe('changesPage', () => {
  const d = (fields) => describeMessage(event(fields), { site });

  it('is the shown content itself', () => {
    expect(changesPage(d({}), '/news/item', 'rita')).toBe(true);
    expect(changesPage(d({}), '/news/item/', 'rita')).toBe(true);
    expect(changesPage(d({ type: 'transition' }), '/news/item', 'rita')).toBe(true);
    expect(changesPage(d({}), '/news', 'rita')).toBe(false);
  });

  it('is an item added to or removed from the shown folder', () => {
    expect(changesPage(d({ type: 'created' }), '/news', 'rita')).toBe(true);
    expect(changesPage(d({ type: 'removed' }), '/news', 'rita')).toBe(true);
    expect(changesPage(d({ type: 'removed' }), '/news/item', 'rita')).toBe(false);
    expect(changesPage(d({ type: 'created', path: '/Plone/a' }), '/', 'rita')).toBe(true);
  });

  it('is never a form or another view, the user own edit, or a notification', () => {
    expect(changesPage(d({}), '/news/item/edit', 'rita')).toBe(false);
    expect(changesPage(d({}), '/news/item', 'eddie')).toBe(false);
    expect(changesPage(d({ type: 'notification' }), '/news/item', 'rita')).toBe(false);
    expect(changesPage(d({ path: '/Plone2/news/item' }), '/news/item', 'rita')).toBe(false);
  });
});

describe('subscriptionMessages', () => {
  it('narrows the connection to the configured routes', () => {
    expect(subscriptionMessages(site, ['/news', '/events'])).toEqual([
      { action: 'subscribe', path: '/Plone/news' },
      { action: 'subscribe', path: '/Plone/events' },
      { action: 'unsubscribe', path: '/Plone' },
    ]);
  });

  it('leaves the whole site alone', () => {
    expect(subscriptionMessages(site, [])).toEqual([]);
    expect(subscriptionMessages(site, ['/'])).toEqual([]);
    expect(subscriptionMessages(site, ['/news', '/'])).toEqual([]);
    expect(subscriptionMessages(null, ['/news'])).toEqual([]);
  });
});
