"""`txzserver ctl`: plonectl's commands on supervisord (XML-RPC through supervisor's client).

The supervisord.conf is ``-c PATH``, else ``$TXZSERVER_SUPERVISORD_CONF``, else
``./etc/supervisord.conf`` (an instance folder made by ``mkinstance``), else
``/app/etc/supervisord.conf`` (the image's standalone role). Its ``[supervisorctl] serverurl``
(or ``[unix_http_server]``) says where supervisord listens.

Exit status (documented in docs/operators/instance-control.md):
  0  done; for ``status``: every program asked about is RUNNING
  1  an action failed (a program did not start or stop, no log to tail)
  2  usage: no supervisord.conf, unknown program name
  3  ``status``: at least one program is not RUNNING
  4  supervisord is not running (or its socket cannot be reached)
"""

import code
import os
import socket
import sys
import time
import xmlrpc.client

from supervisor.options import ClientOptions
from supervisor.xmlrpc import Faults

OK, FAILED, USAGE, NOT_RUNNING, UNREACHABLE = 0, 1, 2, 3, 4
CANDIDATES = ("etc/supervisord.conf", "/app/etc/supervisord.conf")
ENV = "TXZSERVER_SUPERVISORD_CONF"


class CtlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def find_config(path=None):
    """The supervisord.conf to use, or CtlError(USAGE)."""
    for candidate in (path, os.environ.get(ENV), *CANDIDATES):
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
        if candidate and candidate in (path, os.environ.get(ENV)):
            raise CtlError(USAGE, f"no such supervisord.conf: {candidate}")
    raise CtlError(USAGE, "no supervisord.conf: give -c PATH (an instance's etc/supervisord.conf)")


def connect(config):
    """supervisor's own XML-RPC proxy for ``config`` (``proxy.supervisor.*``)."""
    options = ClientOptions()
    options.realize(args=["-c", config], doc="")
    return options.getServerProxy()


class Control:
    """The commands, each returning an exit status; ``out`` receives what they print."""

    def __init__(self, proxy, out=sys.stdout):
        self.rpc = proxy.supervisor
        self.out = out

    def _call(self, method, *args):
        try:
            return getattr(self.rpc, method)(*args)
        except (OSError, socket.error) as exc:
            raise CtlError(UNREACHABLE, f"supervisord is not running ({exc})") from exc

    def programs(self, names=()):
        """Process infos (all, or the named ones: "instance" or "group:instance")."""
        infos = self._call("getAllProcessInfo")
        if not names or "all" in names:
            return infos
        chosen = []
        for name in names:
            match = [i for i in infos if name in (i["name"], f"{i['group']}:{i['name']}")]
            if not match:
                known = ", ".join(i["name"] for i in infos)
                raise CtlError(USAGE, f"no program {name!r} (known: {known})")
            chosen += match
        return chosen

    @staticmethod
    def _full(info):
        return info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"

    def status(self, names=()):
        infos = self.programs(names)
        for info in infos:
            print(f"{self._full(info):<24} {info['statename']:<10} {info['description']}", file=self.out)
        return OK if all(i["statename"] == "RUNNING" for i in infos) else NOT_RUNNING

    def stop(self, names=()):
        status = OK
        for info in reversed(self._ordered(names)):
            if info["statename"] not in ("RUNNING", "STARTING", "BACKOFF"):
                continue
            status = max(status, self._act("stopProcess", info, "stopped"))
        return status

    def start(self, names=()):
        status = OK
        for info in self._ordered(names):
            if info["statename"] == "RUNNING":
                print(f"{self._full(info)}: already running", file=self.out)
                continue
            status = max(status, self._act("startProcess", info, "started"))
        return status

    def restart(self, names=()):
        stopped = self.stop(names)
        return max(stopped, self.start(names))

    def _ordered(self, names):
        """Programs in start order: by their ``priority`` (the standalone role: zeo, broker,
        instance), as supervisord's own start-all does; stop runs the reverse."""
        priority = {(c["group"], c["name"]): c.get("process_prio", 999)
                    for c in self._call("getAllConfigInfo")}
        return sorted(self.programs(names),
                      key=lambda i: (priority.get((i["group"], i["name"]), 999), self._full(i)))

    def _act(self, method, info, done):
        name = self._full(info)
        try:
            self._call(method, name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode in (Faults.NOT_RUNNING, Faults.ALREADY_STARTED):
                print(f"{name}: {done} already", file=self.out)
                return OK
            print(f"{name}: ERROR ({fault.faultString})", file=self.out)
            return FAILED
        print(f"{name}: {done}", file=self.out)
        return OK

    def tail(self, name=None, follow=False, length=4096, stream="stdout", stop=None):
        infos = self.programs([name] if name else ())
        if not infos:
            raise CtlError(USAGE, "supervisord runs no program")
        if name is None:
            infos = [i for i in infos if i["name"] == "instance"] or infos
        full = self._full(infos[0])
        read = "tailProcessStderrLog" if stream == "stderr" else "tailProcessStdoutLog"
        try:
            data, offset, _ = self._call(read, full, 0, length)
            self.out.write(data)
            while follow and not (stop and stop()):
                self.out.flush()
                time.sleep(0.5)
                data, offset, _ = self._call(read, full, offset, length)
                self.out.write(data)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.NO_FILE:
                print(f"{full} has no {stream} log file (in the image it goes to `docker logs`)",
                      file=sys.stderr)
                return FAILED
            raise CtlError(USAGE, f"{full}: {fault.faultString}") from fault
        except KeyboardInterrupt:
            pass
        self.out.flush()
        return OK


def zope_conf_for(config, zope_conf=None):
    """The zope.conf for ``ctl debug``: given, or next to the supervisord.conf."""
    path = zope_conf or os.path.join(os.path.dirname(config), "zope.conf")
    if not os.path.isfile(path):
        raise CtlError(USAGE, f"no zope.conf at {path}: give --zope-conf PATH")
    return path


def debug(opts, settings, stdin=None):
    """An interactive console with ``app`` bound (zconsole debug / plonectl debug).

    It opens the database itself: with a FileStorage stop the instance first (the file is
    locked while it runs); a ZEO client may debug next to the running instances.
    """
    from .zope.startup import close_zope, configure_logging, start_zope
    import Zope2

    configure_logging(opts.configroot)
    start_zope(opts, settings)
    app = Zope2.app()
    banner = "txzserver debug: the Zope root is `app`; commit with transaction.commit()"
    try:
        if stdin is not None and not stdin.isatty():
            exec(compile(stdin.read(), "<stdin>", "exec"), {"app": app})
        else:
            code.interact(banner=banner, local={"app": app}, exitmsg="")
    finally:
        app._p_jar.close()
        close_zope()
    return OK
