/**
 * When to reconnect: exponential backoff with "equal jitter" (half the delay fixed, half
 * random), so that browsers that lost a restarted server do not all come back in the same
 * second; the same schedule as Classic UI's toast script.
 *
 * What the server tells a browser is only the close code (a refused handshake's HTTP status
 * and Retry-After never reach a WebSocket's script; it sees 1006):
 * - 4001: the server closed the connection for the client to authenticate again
 *   (max-connection-age, a role change, a logout): come back soon, with a new handshake.
 * - a connection that was open (had its welcome) and then lost (1001 server going away, 1006
 *   network): start the schedule again from its shortest delay.
 * - a connection that never got its welcome (a handshake refused, overloaded, unreachable; a
 *   socket closed before the welcome): the schedule goes on growing and waits at least
 *   `refusedDelay`, the Retry-After of the server's 503.
 */

export const REAUTHENTICATE = 4001;
export const NORMAL = 1000;

/** The delay before attempt number `attempt` (0, 1, 2...), in milliseconds. */
export function backoffDelay(attempt, { minDelay, maxDelay }, random = Math.random) {
  const base = Math.min(maxDelay, minDelay * 2 ** Math.max(0, attempt));
  return base / 2 + random() * (base / 2);
}

/**
 * What to do after a close: `{ reconnect, delay, attempt }`, `attempt` being the number to
 * pass with the next close. `close` is `{ code, opened, byClient }`: `opened` whether that
 * socket got the server's welcome, `byClient` whether this page closed it itself (no reconnect then).
 */
export function afterClose(close, attempt, settings, random = Math.random) {
  if (close.byClient) {
    return { reconnect: false, delay: 0, attempt: 0 };
  }
  if (close.opened && close.code === REAUTHENTICATE) {
    return { reconnect: true, delay: random() * settings.minDelay, attempt: 0 };
  }
  const next = close.opened ? 0 : attempt;
  let delay = backoffDelay(next, settings, random);
  if (!close.opened) {
    delay = Math.max(delay, settings.refusedDelay);
  }
  return { reconnect: true, delay, attempt: next + 1 };
}
