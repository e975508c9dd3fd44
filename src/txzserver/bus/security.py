"""Who may use the bus, and how much a peer may send.

tcp endpoints speak CURVE: the broker holds the server key pair, every process that connects
holds a client key pair and the broker's public key, and the broker lets in only the client
public keys of its allow-list (a ZAP handler). Keys are ZeroMQ's z85 certificate files, as
``zmq.auth.create_certificates`` writes them (``txzserver buskeys``). ipc endpoints are
protected by their directory instead: made by this user with mode 0700, refused when another
user owns it or it is open to others (whoever creates it first could be the broker).
Every bus socket gets explicit high-water marks and ZMQ_MAXMSGSIZE (a larger message closes
the sender's connection before the message is read into memory).
"""

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.utils.monitor import parse_monitor_message

log = logging.getLogger("txzserver.bus.security")

ZAP_DOMAIN = b"txzserver"
#: ZMQ_MAXMSGSIZE of every bus socket: events are a few hundred bytes; a task carries its
#: request's form, which the largest Plone forms keep well below this.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
#: Messages queued per peer and direction before a PUB drops (and a PUSH refuses) more.
DEFAULT_HIGH_WATER_MARK = 100000


class BusSecurityError(ValueError):
    """The bus cannot start safely: the message says why, for the operator (exit 2)."""


def is_tcp(endpoint):
    return endpoint.startswith("tcp://")


def secure_ipc_dir(endpoint):
    """Make the directory of an ipc:// endpoint (mode 0700), or check that the existing one is
    this user's and closed to others; BusSecurityError if not."""
    if not endpoint.startswith("ipc://"):
        return
    directory = os.path.dirname(endpoint[len("ipc://"):])
    if not directory:
        return
    parent = os.path.dirname(directory)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise BusSecurityError(f"ipc socket directory {directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise BusSecurityError(
            f"ipc socket directory {directory} belongs to uid {info.st_uid}, not to this user"
            f" (uid {os.geteuid()}): whoever made it could stand in for the broker; remove it"
            " or choose another endpoint")
    if info.st_mode & 0o077:
        raise BusSecurityError(
            f"ipc socket directory {directory} has mode {stat.S_IMODE(info.st_mode):04o}: other"
            f" users could connect to the bus or replace its sockets; chmod 700 {directory}")


def _load(path, secret):
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise BusSecurityError(f"cannot read the bus key {path}: {exc}") from exc
    if secret and secret_key is None:
        raise BusSecurityError(f"{path} holds no secret key: give the NAME.key_secret file")
    return public, secret_key


def load_allowed(path):
    """The client public keys of ``path``: a certificate file, or a directory of them."""
    files = [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.endswith(".key"))
    keys = frozenset(_load(name, secret=False)[0] for name in files)
    if not keys:
        raise BusSecurityError(f"no client public keys (*.key) in {path}")
    return keys


@dataclass(frozen=True)
class BusLimits:
    """Size limits set on every bus socket."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    high_water_mark: int = DEFAULT_HIGH_WATER_MARK

    def apply(self, sock, receive_hwm=None):
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_size)
        sock.setsockopt(zmq.SNDHWM, self.high_water_mark)
        sock.setsockopt(zmq.RCVHWM, receive_hwm or self.high_water_mark)


@dataclass(frozen=True)
class ClientSecurity:
    """How an instance (or another client) connects: limits, and its CURVE keys for tcp
    (``server_public``, ``public``, ``secret``; None with ``curve off``)."""

    limits: BusLimits = BusLimits()
    keys: tuple | None = None

    @classmethod
    def load(cls, server_key, client_key, limits=BusLimits()):
        """From the broker's public certificate and this client's secret certificate."""
        server_public, _ = _load(server_key, secret=False)
        public, secret = _load(client_key, secret=True)
        return cls(limits, (server_public, public, secret))

    def socket(self, ctx, kind, endpoint, receive_hwm=None):
        """A socket of ``kind`` for ``endpoint``, configured, not yet connected."""
        if is_tcp(endpoint) and self.keys is None:
            log.warning("bus endpoint %s without CURVE (curve off): anyone who reaches it"
                        " may read and send bus messages", endpoint)
        secure_ipc_dir(endpoint)
        sock = ctx.socket(kind)
        self.limits.apply(sock, receive_hwm)
        if is_tcp(endpoint) and self.keys is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.keys
        return sock

    def __repr__(self):  # never print a secret key
        return f"ClientSecurity(limits={self.limits!r}, curve={self.keys is not None})"


class OncePerMinute:
    """Logs a warning at most once a minute per key (a hostile peer could flood the log);
    ``emit(text)`` writes it."""

    def __init__(self, emit, interval=60.0, limit=1024):
        self.emit, self.interval, self.limit = emit, interval, limit
        self.last = {}

    def warn(self, key, message, *args):
        now = time.monotonic()
        if now - self.last.get(key, -self.interval) < self.interval:
            return
        if len(self.last) >= self.limit:
            self.last.clear()
        self.last[key] = now
        self.emit(message % args)


class BrokerGuard:
    """The broker's side: CURVE server options for its tcp sockets, the ZAP handler that lets
    in the allowed client keys, and the count of refused peers (every failed handshake on a
    tcp socket: no CURVE, a wrong server key or a key not allowed), read from each socket's
    monitor. One thread answers ZAP and reads the monitors until ``stop``.

    ``keys``: (server public, server secret) or None (curve off); ``allowed``: client public
    keys."""

    HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                        | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

    def __init__(self, ctx, limits=BusLimits(), keys=None, allowed=frozenset()):
        self.ctx, self.limits, self.keys, self.allowed = ctx, limits, keys, frozenset(allowed)
        self.refused = {}  # (endpoint, reason) -> count
        self.monitors = {}  # monitor socket -> (socket, endpoint)
        self.logs = OncePerMinute(log.warning)
        self.quiet = OncePerMinute(log.info)
        self._stop = threading.Event()
        self.zap = None
        if keys is not None:
            self.zap = ctx.socket(zmq.REP)
            self.zap.setsockopt(zmq.LINGER, 0)
            self.zap.bind("inproc://zeromq.zap.01")
        self.thread = threading.Thread(target=self._run, name="broker-guard", daemon=True)

    @classmethod
    def load(cls, ctx, limits, server_key, allow):
        public, secret = _load(server_key, secret=True)
        return cls(ctx, limits, (public, secret), load_allowed(allow))

    def bind(self, sock, endpoint):
        """Configure ``sock`` (a server socket of the broker) and bind it to ``endpoint``."""
        self.limits.apply(sock)
        if is_tcp(endpoint):
            if self.keys is None:
                log.warning("broker endpoint %s without CURVE (curve off): anyone who reaches"
                            " it may read and send bus messages", endpoint)
            else:
                sock.curve_server = True
                sock.curve_publickey, sock.curve_secretkey = self.keys
                sock.zap_domain = ZAP_DOMAIN
                self.monitors[sock.get_monitor_socket(self.HANDSHAKE_FAILED)] = (sock, endpoint)
        secure_ipc_dir(endpoint)
        sock.bind(endpoint)
        if endpoint.startswith("ipc://"):
            os.chmod(endpoint[len("ipc://"):], 0o660)

    def refused_total(self):
        return sum(self.refused.values())

    def start(self):
        self.thread.start()

    def stop(self):
        """After the broker's sockets are closed."""
        self._stop.set()
        self.thread.join(5)
        for monitor in self.monitors:  # after the sockets closed: their monitors have ended
            monitor.close(linger=0)
        if self.zap is not None:
            self.zap.close(linger=0)

    def _run(self):
        sockets = ([self.zap] if self.zap is not None else []) + list(self.monitors)
        if not sockets:
            # ipc endpoints only, or curve off: nothing to answer or count. zmq's poll of no
            # sockets returns at once instead of waiting its timeout, so polling would spin
            # (a broker of the compose stack used 60 % of a core doing nothing).
            self._stop.wait()
            return
        poller = zmq.Poller()
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(200):
                if sock is self.zap:
                    self._answer(sock.recv_multipart())
                else:
                    self._failed(sock, parse_monitor_message(sock.recv_multipart()))

    def _answer(self, frames):
        """A ZAP request (RFC 27): version, id, domain, address, identity, mechanism, key."""
        version, request, _, address, _, mechanism = frames[:6]
        key = frames[6] if mechanism == b"CURVE" and len(frames) > 6 else None
        if key is not None and zmq.utils.z85.encode(key) in self.allowed:
            self.zap.send_multipart([version, request, b"200", b"OK", b"", b""])
            return
        shown = zmq.utils.z85.encode(key).decode() if key is not None else mechanism.decode()
        self.logs.warn(("zap", address), "bus: refused %s (client key %s not allowed)",
                       address.decode(), shown)
        self.zap.send_multipart([version, request, b"400", b"key not allowed", b"", b""])

    def _failed(self, monitor, event):
        _, endpoint = self.monitors[monitor]
        # no CURVE, a wrong server key, garbage: "handshake"; an unknown client key: ZAP's 400
        reason = "key-not-allowed" if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "handshake"
        found = self.refused.get((endpoint, reason), 0) + 1
        self.refused[(endpoint, reason)] = found
        # a connection closed before its handshake (a kubelet's tcpSocket probe) is counted,
        # but no warning: probes make one every few seconds
        logs = self.logs if reason == "key-not-allowed" or event["event"] != \
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL else self.quiet
        logs.warn((endpoint, reason), "bus: refused a peer on %s (%s; %d so far)",
                  endpoint, reason, found)
