import ToastQueue from '../src/toastqueue';
import { FakeClock } from './fakes';

describe('ToastQueue', () => {
  let clock;
  let queue;
  let shown;

  beforeEach(() => {
    clock = new FakeClock();
    queue = new ToastQueue(clock, 1000);
    shown = [];
  });

  const show = (content, options) => shown.push({ content, options });

  it('asks for a toast at once when none is waiting to open', () => {
    queue.show(show, 'first', { autoClose: 5 });
    expect(shown.map((s) => s.content)).toEqual(['first']);
    expect(shown[0].options.autoClose).toBe(5);
  });

  it('asks for the next one only once the one before has opened', () => {
    queue.show(show, 'transition');
    queue.show(show, 'notification');
    queue.show(show, 'third');
    expect(shown.map((s) => s.content)).toEqual(['transition']);
    shown[0].options.onOpen();
    expect(shown.map((s) => s.content)).toEqual(['transition', 'notification']);
    shown[1].options.onOpen();
    expect(shown.map((s) => s.content)).toEqual(['transition', 'notification', 'third']);
  });

  it("calls the caller's own onOpen too", () => {
    const opened = jest.fn();
    queue.show(show, 'first', { onOpen: opened });
    shown[0].options.onOpen('props');
    expect(opened).toHaveBeenCalledWith('props');
  });

  it('goes on after the fallback when a toast never opens, and once only', () => {
    queue.show(show, 'lost');
    queue.show(show, 'next');
    clock.advance(999);
    expect(shown).toHaveLength(1);
    clock.advance(1);
    expect(shown.map((s) => s.content)).toEqual(['lost', 'next']);
    shown[0].options.onOpen(); // late: changes nothing
    queue.show(show, 'third');
    expect(shown).toHaveLength(2);
    shown[1].options.onOpen();
    expect(shown.map((s) => s.content)).toEqual(['lost', 'next', 'third']);
  });

  it('forgets what is waiting on clear', () => {
    queue.show(show, 'first');
    queue.show(show, 'second');
    queue.clear();
    clock.advance(5000);
    expect(shown).toHaveLength(1);
    queue.show(show, 'after');
    expect(shown.map((s) => s.content)).toEqual(['first', 'after']);
  });
});
