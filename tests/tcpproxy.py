"""A small threaded TCP proxy for tests: a fixed address in front of a moving target.

The proxy listens on one 127.0.0.1 port for its whole life and forwards each accepted
connection to the current target.  Tests use it to:

* keep a stable address while the server behind it restarts on a new port
  (`set_target()` / `restore(target)`), and
* simulate a network outage: `cut()` drops every live connection and closes the
  listener, so new connections are *refused*; `restore()` listens again on the same port.

The port stays reserved while cut: a bound, never-listening ``SO_REUSEPORT`` socket holds
it for the proxy's life (Linux refuses connects to a port nobody listens on, and other
sockets cannot bind it), so nothing else can take it between `cut()` and `restore()`.

Kafka clients learn broker addresses from metadata, so a proxy only helps for Kafka when
the broker advertises the proxy's address (see `tests/fix_kafka.py`).
"""

from __future__ import annotations

import socket
import threading

_BUFSIZE = 65536
_ACCEPT_POLL_S = 0.1


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target` (`(host, port)`), one thread per direction."""

    def __init__(
        self,
        target: tuple[str, int] | None = None,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.host = listen_host
        self._target = target
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._closed = False
        self._reservation = _reserve(listen_host, listen_port)
        self.port: int = self._reservation.getsockname()[1]
        self._listen()

    # -- public API -------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` clients should connect to."""
        return f"{self.host}:{self.port}"

    @property
    def target(self) -> tuple[str, int] | None:
        return self._target

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._pairs)

    def set_target(self, target: tuple[str, int] | None) -> None:
        """Forward *new* connections to `target` (None: accept and close at once)."""
        self._target = target

    def drop_connections(self) -> None:
        """Close every live connection; keep accepting new ones."""
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for client, upstream in pairs:
            _close(client)
            _close(upstream)

    def cut(self) -> None:
        """Outage: drop every connection and stop listening (connects get ECONNREFUSED)."""
        listener, self._listener = self._listener, None
        thread, self._accept_thread = self._accept_thread, None
        if thread is not None:  # it notices within _ACCEPT_POLL_S; close only after it left
            thread.join(timeout=5.0)
        if listener is not None:
            listener.close()
        self.drop_connections()

    def restore(self, target: tuple[str, int] | None = None) -> None:
        """End an outage: listen again on the same port (optionally with a new target)."""
        if target is not None:
            self._target = target
        if self._closed:
            raise RuntimeError("proxy is closed")
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._reservation.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "cut" if self.is_cut else "up"
        return f"<TcpProxy {self.address} -> {self._target} {state}>"

    # -- internals --------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _REUSEPORT is not None:
            sock.setsockopt(socket.SOL_SOCKET, _REUSEPORT, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"TcpProxy cannot listen on {self.host}:{self.port}: {exc}") from exc
        sock.listen(128)
        sock.settimeout(_ACCEPT_POLL_S)
        self._listener = sock
        thread = threading.Thread(
            target=self._accept_loop, args=(sock,), name=f"tcpproxy-{self.port}", daemon=True
        )
        self._accept_thread = thread
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        target = self._target
        if target is None:
            _close(client)
            return
        try:
            upstream = socket.create_connection(target, timeout=self._connect_timeout)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (client, upstream)
        with self._lock:
            self._pairs.add(pair)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(
                target=self._pump, args=(src, dst, pair), name="tcpproxy-pump", daemon=True
            ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        try:
            while True:
                data = src.recv(_BUFSIZE)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            _close(src)
            _close(dst)


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (never listen) a socket that keeps `port` ours while the listener is closed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if _REUSEPORT is not None:  # no SO_REUSEADDR: others cannot bind the port meanwhile
        sock.setsockopt(socket.SOL_SOCKET, _REUSEPORT, 1)
        sock.bind((host, port))
        return sock
    # Without SO_REUSEPORT the listener cannot share the port: pick one, reserve nothing.
    sock.bind((host, port))
    port = sock.getsockname()[1]
    sock.close()
    return _FixedPort(host, port)  # type: ignore[return-value]


class _FixedPort:
    """Stand-in reservation where SO_REUSEPORT is missing (the port is not protected)."""

    def __init__(self, host: str, port: int) -> None:
        self._addr = (host, port)

    def getsockname(self) -> tuple[str, int]:
        return self._addr

    def close(self) -> None:
        pass


_REUSEPORT: int | None = getattr(socket, "SO_REUSEPORT", None)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
