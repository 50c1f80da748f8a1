"""PostgreSQL fixtures: a throwaway cluster for the session, a fresh database per test.

Fixtures (loaded as a plugin from ``tests/conftest.py``):

``pg_cluster`` (session)
    A `PgCluster`: ``initdb`` into a temp dir, ``wal_level=logical``, listening on
    127.0.0.1 at a free port, trust auth (replication included), user ``postgres``.
    Run as root, the server runs as the ``postgres`` system user.  After every test it
    is healed if the test left it stopped or reconfigured.
``pg_db`` (function)
    A `PgDatabase`: a new database per test, dropped at teardown together with its
    replication slots, so slots and publications never leak between tests.

The binaries come from ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``; without
them the fixtures skip and say to run ``scripts/install-deps``.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

SUPERUSER = "postgres"
DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_replication_slots": "64",
    "max_wal_senders": "64",
    "max_connections": "200",
    "fsync": "off",  # speed; synchronous_commit stays on: tests measure real commits
    "full_page_writes": "off",
    "TimeZone": "'UTC'",
    "log_timezone": "'UTC'",
    "shared_buffers": "32MB",
    "wal_sender_timeout": "60s",
}
DB_PREFIX = "cdcdtest_"  # databases made by the pg_db fixture
_CONF_FILE = "cdcd_test.conf"
_INSTALL_HINT = "PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/install-deps"


class PgError(RuntimeError):
    """The test cluster failed to do what was asked; the message includes its log."""


class PgCluster:
    """A throwaway PostgreSQL cluster driven by ``pg_ctl``.

    ``stop()``/``start()``/``restart()`` keep the port and the data, so a test can restart
    PostgreSQL under a running cdcd.  ``set_config()`` changes a server setting
    (restarting by default); ``reset_config()`` puts the defaults back.
    """

    def __init__(self, bindir: Path, basedir: Path, *, run_as: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.basedir = basedir
        self.datadir = basedir / "data"
        self.sockdir = basedir / "sock"
        self.logfile = basedir / "postgresql.log"
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = SUPERUSER
        self.settings: dict[str, str] = dict(DEFAULT_SETTINGS)
        self._run_as = run_as

    # -- connection helpers -----------------------------------------------------------

    def dsn(self, dbname: str = "postgres", **extra: Any) -> str:
        """A libpq ``key=value`` string; `extra` adds or overrides keywords."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname,
            "connect_timeout": 5,
        }
        params.update(extra)
        return make_conninfo("", **params)

    def connect(self, dbname: str = "postgres", **extra: Any) -> psycopg.Connection[Any]:
        """An autocommit connection; close it (or use it as a context manager)."""
        return psycopg.connect(self.dsn(dbname, **extra), autocommit=True)

    def execute(
        self, query: str | sql.Composable, params: Any = None, *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement on a short-lived connection; return its rows (or [])."""
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description is not None else []

    # -- lifecycle --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        result = self._pg_ctl("status", check=False)
        return result.returncode == 0

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def init(self) -> None:
        """``initdb`` and write the configuration (once)."""
        for d in (self.basedir, self.sockdir):
            d.mkdir(exist_ok=True)
            self._own(d)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initdb",
        )  # fmt: skip
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"\n# cdcd tests\ninclude '{_CONF_FILE}'\n")
        (self.datadir / "pg_hba.conf").write_text(
            "# cdcd tests: trust everything local\n"
            "local all         all            trust\n"
            "local replication all            trust\n"
            "host  all         all 127.0.0.1/32 trust\n"
            "host  replication all 127.0.0.1/32 trust\n"
        )
        self._write_settings()

    def start(self, timeout: float = 30.0) -> None:
        """Start on the same port and data (no-op when running); wait until it accepts."""
        if self.running:
            return
        self._write_settings()
        result = self._pg_ctl(
            "start", "-w", "-t", str(int(timeout)), "-l", str(self.logfile), check=False
        )
        if result.returncode != 0:
            raise PgError(
                f"PostgreSQL failed to start (pg_ctl exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- {self.logfile}:\n{self.log_tail()}"
            )
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode`` (smart, fast or immediate); no-op when stopped."""
        if not self.running:
            return
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(connect_timeout=2)) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PgError(f"PostgreSQL not ready: {exc}\n{self.log_tail()}") from exc
                time.sleep(0.1)

    def set_config(self, name: str, value: str | int, *, restart: bool = True) -> None:
        """Set a server setting (``value`` as written in postgresql.conf), then restart.

        Settings are reset after the test that changed them, so other tests see defaults.
        """
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise ValueError(f"bad setting name {name!r}")
        self.settings[name] = str(value)
        self._write_settings()
        if restart:
            self.restart()

    def reset_config(self, *, restart: bool = True) -> None:
        """Back to `DEFAULT_SETTINGS`; restarts only if something changed."""
        if self.settings == DEFAULT_SETTINGS:
            return
        self.settings = dict(DEFAULT_SETTINGS)
        self._write_settings()
        if restart:
            self.restart()

    def show(self, name: str) -> str:
        return str(self.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))[0][0])

    def heal(self) -> None:
        """Running with the default settings again (used between tests)."""
        if self.settings != DEFAULT_SETTINGS:
            self.reset_config(restart=False)
            self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def log_tail(self, max_chars: int = 8000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"<PgCluster {self.host}:{self.port} {self.datadir}>"

    # -- internals --------------------------------------------------------------------

    def _write_settings(self) -> None:
        lines = [f"port = {self.port}", f"unix_socket_directories = '{self.sockdir}'"]
        lines += [f"{k} = {v}" for k, v in self.settings.items()]
        path = self.datadir / _CONF_FILE
        path.write_text("\n".join(lines) + "\n")
        self._own(path)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            what=f"pg_ctl {args[0]}",
            check=check,
        )

    def _run(
        self, cmd: list[str], *, what: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", TZ="UTC")
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            env.update(HOME=self._run_as.pw_dir, USER=self._run_as.pw_name)
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        result = subprocess.run(
            cmd,
            cwd=self.basedir,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise PgError(
                f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n"
                f"{result.stdout}{result.stderr}\n--- {self.logfile}:\n{self.log_tail()}"
            )
        return result

    def _own(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)


class PgDatabase:
    """One test's database in the session cluster."""

    def __init__(self, cluster: PgCluster, dbname: str) -> None:
        self.cluster = cluster
        self.dbname = dbname

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.dbname)

    def dsn_with(self, **extra: Any) -> str:
        """The DSN with extra libpq keywords, e.g. ``replication="database"``."""
        return self.cluster.dsn(self.dbname, **extra)

    def connect(self, **extra: Any) -> psycopg.Connection[Any]:
        return self.cluster.connect(self.dbname, **extra)

    def execute(self, query: str | sql.Composable, params: Any = None) -> list[tuple[Any, ...]]:
        return self.cluster.execute(query, params, dbname=self.dbname)

    def create(self) -> None:
        self.cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    def drop(self, timeout: float = 30.0) -> None:
        """Terminate its backends (walsenders too), drop its slots, drop it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._drop_once()
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _drop_once(self) -> None:
        with self.cluster.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.dbname,),
            )
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE database = %s AND active_pid IS NOT NULL",
                (self.dbname,),
            )
            slots = conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (self.dbname,)
            ).fetchall()
            for (slot,) in slots:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.dbname)
                )
            )

    def __repr__(self) -> str:
        return f"<PgDatabase {self.dbname} on {self.cluster.host}:{self.cluster.port}>"


def find_bindir() -> Path | None:
    """The PostgreSQL server bin directory, or None when no ``initdb`` is installed."""
    candidates: list[Path] = []
    if env := os.environ.get("CDCD_PG_BINDIR"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.CalledProcessError):
            pass
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0), reverse=True)
    candidates += [Path(p) for p in versions]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """None when not root; else the account PostgreSQL runs as (it refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and no 'postgres' user to run PostgreSQL as")


# -- fixtures -------------------------------------------------------------------------

_session_cluster: PgCluster | None = None
_db_counter = 0


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    global _session_cluster
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(_INSTALL_HINT)
    run_as = _server_user()
    basedir = Path(tempfile.mkdtemp(prefix="cdcd-pg-"))
    os.chmod(basedir, 0o700)
    cluster = PgCluster(bindir, basedir, run_as=run_as)
    try:
        cluster.init()
        for attempt in range(3):
            try:
                cluster.start()
                break
            except PgError:
                if attempt == 2 or "could not bind" not in cluster.log_tail():
                    raise
                cluster.port = _free_port()  # someone took the port meanwhile
    except BaseException:
        cluster.destroy()
        raise
    _session_cluster = cluster
    try:
        yield cluster
    finally:
        _session_cluster = None
        cluster.destroy()


@pytest.fixture(autouse=True)
def _heal_pg_cluster() -> Iterator[None]:
    """After each test, restart the shared cluster if the test stopped or reconfigured it."""
    yield
    if _session_cluster is not None:
        _session_cluster.heal()


@pytest.fixture
def pg_db(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    global _db_counter
    _db_counter += 1
    name = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    db = PgDatabase(pg_cluster, f"{DB_PREFIX}{_db_counter}_{name}"[:63])
    db.create()
    try:
        yield db
    finally:
        pg_cluster.heal()
        db.drop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests using the cluster ``pg``, so ``-m "not pg"`` works without decorators."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_cluster" in names or "pg_db" in names:
            item.add_marker(pytest.mark.pg)
