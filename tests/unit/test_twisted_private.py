"""The private Twisted names txzserver relies on still exist (one test per protocol module).

Each protocol module lists what it uses in PRIVATE_TWISTED_NAMES; when a Twisted upgrade
renames or removes one, this fails naming it, instead of a confusing error at run time.
"""

import re

import pytest
from twisted.web._http2 import H2Connection

from txzserver.server import http1, http2, leanrequest, quicmtu, wsh2
from txzserver.server.http1 import HTTP1Channel

from .helpers import ThreadsReactor, connect, make_site


def _http1_channel_reading_a_request():
    protocol, _ = connect(make_site(http1_parser="twisted"))
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")  # request line read, headers not done
    assert isinstance(protocol.channel, HTTP1Channel)
    return protocol.channel


@pytest.mark.parametrize("name", http1.PRIVATE_TWISTED_NAMES)
def test_http1_private_name_exists(name):
    channel = _http1_channel_reading_a_request()
    assert hasattr(channel, name), (
        f"twisted.web.http.HTTPChannel has no {name!r} any more: txzserver.server.http1 uses it")


@pytest.mark.parametrize("name", http2.PRIVATE_TWISTED_NAMES + wsh2.PRIVATE_TWISTED_NAMES)
def test_http2_private_name_exists(name):
    connection = H2Connection(reactor=ThreadsReactor())
    assert callable(getattr(connection, name, None)), (
        f"twisted.web._http2.H2Connection has no {name!r} any more: txzserver.server.http2 uses it")


@pytest.mark.parametrize("name", leanrequest.PRIVATE_TWISTED_NAMES)
def test_leanrequest_private_name_exists(name):
    import twisted.internet
    module, _, attribute = name.partition(".")
    assert callable(getattr(getattr(twisted.internet, module), attribute, None)), (
        f"twisted.internet.{name} is gone: txzserver.server.leanrequest uses it")


def test_private_names_are_used_only_in_their_protocol_module():
    """No other module of the package reaches into Twisted's protocol internals."""
    from pathlib import Path
    import txzserver
    names = (set(http1.PRIVATE_TWISTED_NAMES) | set(http2.PRIVATE_TWISTED_NAMES)
             | set(wsh2.PRIVATE_TWISTED_NAMES)
             | {name.partition(".")[2] for name in leanrequest.PRIVATE_TWISTED_NAMES})
    root = Path(txzserver.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("http1.py", "http2.py", "wsh2.py", "leanrequest.py"):
            continue
        text = path.read_text()
        # whole names: aioquic's own ``_buffer_stop`` in h3.py is not Twisted's ``_buffer``,
        # nor is the ``_version`` of an aioquic connection a module lists as aioquic's
        own = set(quicmtu.PRIVATE_AIOQUIC_NAMES) if path.name == "quicmtu.py" else set()
        offenders += [f"{path.relative_to(root)}: {name}" for name in names - own
                      if re.search(rf"\.{name}\b", text)]
    assert offenders == []
