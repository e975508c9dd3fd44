/**
 * Toasts shown one after the other.
 *
 * react-toastify 5 (Volto 17 and 18 ship 5.5) adds a toast to its container in a timer, with a
 * setState computed from the container's last rendered list. Under React 18 nothing renders
 * between two such timers of one burst, so of two toasts asked for at once the second replaces
 * the first: the event of a workflow transition and the content rule's notification of the same
 * commit, or the events of one commit that changed several items, showed one toast instead of
 * each (seen in Chromium against the compose stack, about one burst in five). Here each toast
 * is asked for once the one before it has opened (react-toastify's `onOpen`: it is rendered),
 * or `fallback` ms after it was asked for, should it never open (no container on the page).
 */
export default class ToastQueue {
  /** `env`: {setTimeout, clearTimeout} (tests pass a fake clock). */
  constructor(env = globalThis, fallback = 1000) {
    this.env = env;
    this.fallback = fallback;
    this.pending = [];
    this.current = null; // the toast asked for and not yet open: {timer}
  }

  /** Call `show(content, options)` (e.g. `toast.info`) when the toasts before it have opened. */
  show(show, content, options = {}) {
    this.pending.push({ show, content, options });
    this.next();
  }

  next() {
    if (this.current || this.pending.length === 0) {
      return;
    }
    const { show, content, options } = this.pending.shift();
    const current = {};
    const done = () => {
      if (this.current !== current) {
        return; // opened after the fallback went on, or twice
      }
      this.env.clearTimeout(current.timer);
      this.current = null;
      this.next();
    };
    this.current = current;
    current.timer = this.env.setTimeout(done, this.fallback);
    show(content, {
      ...options,
      onOpen: (...args) => {
        if (options.onOpen) {
          options.onOpen(...args);
        }
        done();
      },
    });
  }

  /** Forget the toasts not yet shown (the page's connection ended). */
  clear() {
    if (this.current) {
      this.env.clearTimeout(this.current.timer);
    }
    this.current = null;
    this.pending = [];
  }
}
