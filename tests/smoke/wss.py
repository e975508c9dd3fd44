"""wss:// clients for the smoke tests: tests.support.wsclient.Collector verifying the dev CA."""

import ssl
import time

from tests.support.wsclient import Collector, basic

#: Longer than the client's own open timeout (30 s): when the handshake fails, the listener's
#: thread has ended with the reason by then, and the test reports that reason.
WELCOME_SECONDS = 45


def Listener(url, cafile, user=None, name="client"):
    """A Collector for ``url`` that trusts ``cafile``; Basic auth when ``user`` is given.

    WebSocket goes over HTTP/1.1, so only http/1.1 is offered by ALPN (the front would pick h2).
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["http/1.1"])
    return Collector(url, basic(*user) if user else None, name=name, ssl_context=context)


def refused_for_now(error):
    """Seconds to wait when ``error`` is the server's 503 with Retry-After (its principal lookup
    waited too long behind other work: it asks the client to come back), else None."""
    response = getattr(error, "response", None)
    if getattr(response, "status_code", None) != 503:
        return None
    return float(response.headers.get("Retry-After", "5"))


def welcomed(url, cafile, user=None, name="client", attempts=3):
    """A started Listener that got its welcome. As a browser client does, a handshake answered
    503 with Retry-After is tried again after that many seconds (``attempts`` in all); any other
    failure is reported at once with its reason."""
    for attempt in range(1, attempts + 1):
        listener = Listener(url, cafile, user, name)
        listener.start()
        got = listener.ready.wait(WELCOME_SECONDS)
        assert got, (f"{listener.name}: no welcome within {WELCOME_SECONDS} s and no error"
                     f" (thread alive: {listener.is_alive()})")
        wait = refused_for_now(listener.error)
        if wait is None or attempt == attempts:
            assert listener.error is None, f"{listener.name} (attempt {attempt}): {listener.error!r}"
            assert listener.welcome is not None, f"{listener.name}: {listener.messages}"
            return listener
        print(f"{listener.name}: handshake answered 503, Retry-After {wait:g} s (attempt {attempt})")
        time.sleep(wait)
