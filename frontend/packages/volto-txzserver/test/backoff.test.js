import { afterClose, backoffDelay, REAUTHENTICATE } from '../src/backoff';
import { DEFAULTS } from '../src/settings';

const low = () => 0;
const high = () => 0.999999;

describe('backoffDelay', () => {
  it('doubles from minDelay up to maxDelay, half of it random', () => {
    const bounds = [0, 1, 2, 3, 4, 5, 6, 10].map((n) => [
      backoffDelay(n, DEFAULTS, low),
      Math.round(backoffDelay(n, DEFAULTS, high)),
    ]);
    expect(bounds).toEqual([
      [500, 1000],
      [1000, 2000],
      [2000, 4000],
      [4000, 8000],
      [8000, 16000],
      [15000, 30000],
      [15000, 30000],
      [15000, 30000],
    ]);
  });

  it('spreads clients: many random draws fill the jitter window', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const delays = Array.from({ length: 1000 }, () => backoffDelay(3, DEFAULTS, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...delays)).toBeLessThan(8000);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(3500);
  });
});

describe('afterClose', () => {
  it('does not reconnect after its own close', () => {
    expect(afterClose({ code: 1000, opened: true, byClient: true }, 3, DEFAULTS).reconnect).toBe(false);
  });

  it('comes back within minDelay after 4001, without growing the schedule', () => {
    const plan = afterClose({ code: REAUTHENTICATE, opened: true }, 5, DEFAULTS, high);
    expect(plan.reconnect).toBe(true);
    expect(plan.delay).toBeLessThan(DEFAULTS.minDelay);
    expect(plan.attempt).toBe(0);
  });

  it('starts again from the shortest delay after losing an open connection', () => {
    const plan = afterClose({ code: 1001, opened: true }, 4, DEFAULTS, high);
    expect(plan.delay).toBeLessThanOrEqual(1000);
    expect(plan.attempt).toBe(1);
  });

  it('waits at least refusedDelay after a handshake that never opened, and grows', () => {
    let attempt = 0;
    const delays = [];
    for (let i = 0; i < 7; i += 1) {
      const plan = afterClose({ code: 1006, opened: false }, attempt, DEFAULTS, low);
      delays.push(plan.delay);
      attempt = plan.attempt;
    }
    expect(delays).toEqual([5000, 5000, 5000, 5000, 8000, 15000, 15000]);
  });
});
