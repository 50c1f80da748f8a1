"""Embedded Kafka broker for tests: librdkafka's mock cluster, run in its own process.

Run as ``python tests/mock_broker.py`` (or ``python -m tests.mock_broker``).  It prints the
broker's bootstrap address (``127.0.0.1:PORT``) on the first stdout line, then serves
one-line commands on stdin, answering each with ``ok`` or ``error <reason>``:

==========================  ==============================================================
``ping``                    liveness check
``down`` / ``up``           ``rd_kafka_mock_broker_set_down/up``: close every connection
                            and the listener (connects are refused) / listen again on the
                            same port.  Topics, offsets and transactions are kept.
``advertise HOST PORT``     ``rd_kafka_mock_broker_set_host_port``: the address announced
                            in Metadata (point it at a `tests.tcpproxy.TcpProxy`)
``topic NAME PARTITIONS``   ``rd_kafka_mock_topic_create`` (CreateTopics is not supported
                            by the mock; auto-created topics get 4 partitions)
``rtt MS``                  ``rd_kafka_mock_broker_set_rtt``: add latency to every reply
==========================  ==============================================================

The process exits when stdin closes or on SIGTERM/SIGINT: the broker dies with it and all
its data is lost, which is how a test simulates a broker crash.

The mock cluster is driven through `ctypes` on the librdkafka bundled with confluent-kafka
(its mock API is exported but not wrapped by the Python binding).  Limits worth knowing:
the listener port is always random (no config fixes it), and ``read_committed`` consumers
still see records of aborted transactions.
"""

from __future__ import annotations

import ctypes
import glob
import os
import signal
import sys
from types import FrameType

_BROKER_ID = 1
_PRODUCER = 0  # rd_kafka_type_t RD_KAFKA_PRODUCER


class MockCluster:
    """One mock cluster owned by a private ``rd_kafka_t`` handle."""

    def __init__(self, num_brokers: int = 1) -> None:
        self._lib = _load_librdkafka()
        lib = self._lib
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        debug = os.environ.get("CDCD_MOCK_DEBUG")  # e.g. "mock,protocol", logged to stderr
        if debug:
            lib.rd_kafka_conf_set(conf, b"debug", debug.encode(), errstr, len(errstr))
        else:  # hide the notice that this holder handle has no bootstrap.servers
            lib.rd_kafka_conf_set(conf, b"log_level", b"4", errstr, len(errstr))
        rk = lib.rd_kafka_new(_PRODUCER, conf, errstr, len(errstr))
        if not rk:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._rk = rk
        mcluster = lib.rd_kafka_mock_cluster_new(rk, num_brokers)
        if not mcluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed (see stderr)")
        self._mcluster = mcluster

    @property
    def bootstrap(self) -> str:
        raw: bytes = self._lib.rd_kafka_mock_cluster_bootstraps(self._mcluster)
        return raw.decode()

    def set_down(self) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_down(self._mcluster, -1), "set_down")

    def set_up(self) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_up(self._mcluster, -1), "set_up")

    def set_rtt(self, rtt_ms: int) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_rtt(self._mcluster, -1, rtt_ms), "set_rtt")

    def advertise(self, host: str, port: int) -> None:
        fn = getattr(self._lib, "rd_kafka_mock_broker_set_host_port", None)
        if fn is None:
            raise RuntimeError("this librdkafka has no rd_kafka_mock_broker_set_host_port")
        fn(self._mcluster, _BROKER_ID, host.encode(), port)

    def create_topic(self, name: str, partitions: int) -> None:
        err = self._lib.rd_kafka_mock_topic_create(self._mcluster, name.encode(), partitions, 1)
        self._check(err, f"topic_create {name}")

    def _check(self, err: int, what: str) -> None:
        if err:
            msg: bytes = self._lib.rd_kafka_err2str(err)
            raise RuntimeError(f"{what}: {msg.decode()}")


def _load_librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent-kafka uses: its bundled wheel copy, else the system one."""
    import confluent_kafka

    pkg = os.path.dirname(os.path.abspath(confluent_kafka.__file__))
    candidates = sorted(glob.glob(os.path.join(pkg + ".libs", "librdkafka*.so*")))
    candidates += sorted(glob.glob(os.path.join(pkg, ".dylibs", "librdkafka*.dylib")))
    candidates += ["librdkafka.so.1", "librdkafka.dylib"]
    errors = []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            getattr(lib, "rd_kafka_mock_cluster_new")
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        _declare(lib)
        return lib
    raise RuntimeError("no librdkafka with the mock cluster API found: " + "; ".join(errors))


def _declare(lib: ctypes.CDLL) -> None:
    vp, cp, i32, cint, size = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_size_t,
    )
    sigs: dict[str, tuple[list[type], type | None]] = {
        "rd_kafka_conf_new": ([], vp),
        "rd_kafka_conf_set": ([vp, cp, cp, cp, size], cint),
        "rd_kafka_new": ([cint, vp, cp, size], vp),
        "rd_kafka_err2str": ([cint], cp),
        "rd_kafka_mock_cluster_new": ([vp, cint], vp),
        "rd_kafka_mock_cluster_bootstraps": ([vp], cp),
        "rd_kafka_mock_broker_set_down": ([vp, i32], cint),
        "rd_kafka_mock_broker_set_up": ([vp, i32], cint),
        "rd_kafka_mock_broker_set_rtt": ([vp, i32, cint], cint),
        "rd_kafka_mock_topic_create": ([vp, cp, cint, cint], cint),
        "rd_kafka_mock_broker_set_host_port": ([vp, i32, cp, cint], None),
    }
    for name, (argtypes, restype) in sigs.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.argtypes = argtypes
            fn.restype = restype


def _handle(cluster: MockCluster, line: str) -> None:
    cmd, *args = line.split()
    if cmd == "ping":
        pass
    elif cmd == "down":
        cluster.set_down()
    elif cmd == "up":
        cluster.set_up()
    elif cmd == "advertise":
        cluster.advertise(args[0], int(args[1]))
    elif cmd == "topic":
        cluster.create_topic(args[0], int(args[1]) if len(args) > 1 else 1)
    elif cmd == "rtt":
        cluster.set_rtt(int(args[0]))
    else:
        raise ValueError(f"unknown command {cmd!r}")


def _die(signum: int, frame: FrameType | None) -> None:
    # A crash, not a shutdown: the sockets close with the process.
    sys.stdout.flush()
    os._exit(0)


def main() -> int:
    signal.signal(signal.SIGTERM, _die)
    signal.signal(signal.SIGINT, _die)
    try:
        cluster = MockCluster()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which skips or fails
        print(f"error {exc}", flush=True)
        return 2
    print(cluster.bootstrap, flush=True)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            _handle(cluster, line)
        except Exception as exc:  # noqa: BLE001 - one bad command must not kill the broker
            print(f"error {type(exc).__name__}: {exc}", flush=True)
        else:
            print("ok", flush=True)
    os._exit(0)  # stdin closed: the parent is gone; skip librdkafka's slow teardown


if __name__ == "__main__":
    sys.exit(main())
