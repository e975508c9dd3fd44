"""Serve the same Zope app with waitress, for side-by-side comparisons.

Usage: python -m tests.support.waitress_server ZOPE_CONF PORT THREADS [--seekable]

Zope is configured from the same zope.conf (server sections ignored) and the WSGI app is
the same object txzserver publishes, so only the server differs. --seekable makes
plone.namedfile's range iterator seekable, which lets waitress stream it from its I/O
thread: the fair "best waitress" configuration.
"""

import logging
import sys


def make_seekable():
    from plone.namedfile import utils

    cls = utils.filestream_range_iterator
    cls.seek = lambda self, offset, whence=0: self._io.seek(offset, whence)
    cls.tell = lambda self: self._io.tell()


def main(argv):
    conf, port, threads = argv[0], int(argv[1]), int(argv[2])
    from txzserver.config import load
    from txzserver.zope.startup import configure_logging, start_zope

    opts, settings = load(conf)
    configure_logging(opts.configroot)
    app = start_zope(opts, settings)
    if "--seekable" in argv:
        make_seekable()
    import waitress
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=threads,
                                    ident="waitress", clear_untrusted_proxy_headers=True)
    log = logging.getLogger("txzserver")
    log.info("txzserver waitress listening on http://127.0.0.1:%s", server.effective_port)
    log.info("txzserver ready: waitress with %d thread(s)", threads)
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
