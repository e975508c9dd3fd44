"""waitress on stock Zope WebDAV, the comparison column of docs/webdav.md's litmus table.

Usage: python -m tests.support.dav_waitress ZOPE_CONF PORT THREADS [--source]

Runs tests.support.waitress_server with txzserver's WebDAV fixes (txzserver.zope.davpatches)
taken out again, so the table compares txzserver with what a waitress user gets today.
--source makes the whole waitress port Zope's WebDAV source port (GET returns the
editable source), which is how the Plone folder is tested through the source port.
"""

import sys


def main(argv):
    import txzserver.zope.startup
    from tests.support import waitress_server

    port = int(argv[1])
    source = "--source" in argv
    start_zope = txzserver.zope.startup.start_zope

    def start_stock_zope(opts, settings):
        app = start_zope(opts, settings)
        from txzserver.zope import davpatches
        davpatches.revert()
        if source:
            from ZPublisher.WSGIPublisher import set_webdav_source_port
            set_webdav_source_port(port)
        return app

    txzserver.zope.startup.start_zope = start_stock_zope
    waitress_server.main([arg for arg in argv if arg != "--source"])


if __name__ == "__main__":
    main(sys.argv[1:])
