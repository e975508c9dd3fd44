"""wss:// clients for the smoke tests: tests.support.wsclient.Collector verifying the dev CA."""

import ssl

from tests.support.wsclient import Collector, basic


def Listener(url, cafile, user=None, name="client"):
    """A Collector for ``url`` that trusts ``cafile``; Basic auth when ``user`` is given.

    WebSocket goes over HTTP/1.1, so only http/1.1 is offered by ALPN (the front would pick h2).
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["http/1.1"])
    return Collector(url, basic(*user) if user else None, name=name, ssl_context=context)
