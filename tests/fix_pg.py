"""PostgreSQL fixtures: a throwaway cluster for the session, a fresh database per test.

Fixtures (loaded as a plugin from ``tests/conftest.py``):

``pg_cluster`` (session, one per server version)
    A `PgCluster`: ``initdb`` into a temp dir, ``wal_level=logical``, listening on
    127.0.0.1 at a free port, trust auth (replication included), user ``postgres``.
    Run as root, the server runs as the ``postgres`` system user.  After every test it
    is healed if the test left it stopped or reconfigured.
``pg_db`` (function)
    A `PgDatabase`: a new database per test, dropped at teardown together with its
    replication slots, so slots and publications never leak between tests.
``pg_standby_pair`` (function, PostgreSQL >= 16)
    A `StandbyPair`: a private primary and a hot standby streaming from it
    (``pg_basebackup -R``), for logical decoding on a standby and promotion tests.

Server versions: a test using ``pg_cluster``/``pg_db`` runs once per version (test ids
``[pg15]``, ``[pg16]``; markers ``pg15``, ``pg16``).  By default the end-to-end suite
(``test_e2e_*``), ``test_pg_versions`` and the fixture tests run on 15 and 16, everything
else on 15 (see `versions_for`).  ``--pg-versions=15,16`` (or ``CDCD_TEST_PG_VERSIONS``)
runs every pg test on each listed version.  A version asked for explicitly but not
installed fails the run instead of silently testing less.

Binaries: PostgreSQL 15 from Debian (``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``,
or ``CDCD_PG_BINDIR``), PostgreSQL 16 from the PyPI wheel ``pgserver`` (copied to a
temp dir the ``postgres`` user can read when we are root, since site-packages may live
under ``/root``).  Missing versions make the tests skip and say to run ``scripts/install-deps``.
"""

from __future__ import annotations

import glob
import importlib.util
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
SUPPORTED_VERSIONS = (15, 16)
VERSIONS_ENV = "CDCD_TEST_PG_VERSIONS"
DB_PREFIX = "cdcdtest_"  # databases made by the pg_db fixture
_CONF_FILE = "cdcd_test.conf"


class PgError(RuntimeError):
    """The test cluster failed to do what was asked; the message includes its log."""


class PgCluster:
    """A throwaway PostgreSQL cluster driven by ``pg_ctl``.

    ``stop()``/``start()``/``restart()`` keep the port and the data, so a test can restart
    PostgreSQL under a running cdcd.  ``set_config()`` changes a server setting
    (restarting by default); ``reset_config()`` puts the defaults back.
    """

    def __init__(self, bindir: Path, basedir: Path, *, run_as: pwd.struct_passwd | None,
                 version: int | None = None) -> None:
        self.bindir = bindir
        self.version = version if version is not None else binary_version(bindir)
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
        return f"<PgCluster {self.version} {self.host}:{self.port} {self.datadir}>"

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


class StandbyPair:
    """A private primary and a hot standby streaming from it (``pg_basebackup -R``).

    The standby has ``hot_standby_feedback=on`` (logical slots on a standby need the
    primary to keep the catalog rows they read); both have ``wal_level=logical``.
    """

    def __init__(self, primary: PgCluster, standby: PgCluster) -> None:
        self.primary = primary
        self.standby = standby

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Until the standby replayed everything the primary wrote so far."""
        target = self.primary.execute("SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + timeout
        while True:
            done = self.standby.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),))[0][0]
            if done:
                return
            if time.monotonic() > deadline:
                raise PgError(f"standby never replayed {target}\n{self.standby.log_tail()}")
            time.sleep(0.05)

    def promote(self, timeout: float = 60.0) -> None:
        """``pg_ctl promote -w``: the standby becomes a primary on a new timeline."""
        self.standby._pg_ctl("promote", "-w", "-t", str(int(timeout)))
        deadline = time.monotonic() + timeout
        while self.standby.execute("SELECT pg_is_in_recovery()")[0][0]:
            if time.monotonic() > deadline:
                raise PgError(f"standby never left recovery\n{self.standby.log_tail()}")
            time.sleep(0.05)

    def destroy(self) -> None:
        try:
            self.standby.destroy()
        finally:
            self.primary.destroy()


def start_standby(primary: PgCluster, *, settings: dict[str, str] | None = None) -> PgCluster:
    """A hot standby of `primary`: ``pg_basebackup -R -X stream``, then started on a new port."""
    basedir = Path(tempfile.mkdtemp(prefix=f"cdcd-pg{primary.version}-standby-"))
    os.chmod(basedir, 0o700)
    standby = PgCluster(primary.bindir, basedir, run_as=primary._run_as, version=primary.version)
    standby.settings.update({"hot_standby": "on", "hot_standby_feedback": "on", **(settings or {})})
    try:
        for d in (standby.basedir, standby.sockdir):
            d.mkdir(exist_ok=True)
            standby._own(d)
        standby._run(
            [str(primary.bindir / "pg_basebackup"), "-D", str(standby.datadir),
             "-d", primary.dsn(application_name="cdcd_test_standby"),
             "-R", "-X", "stream", "-c", "fast", "--no-sync"],
            what="pg_basebackup",
        )  # fmt: skip
        standby.start()
    except BaseException:
        standby.destroy()
        raise
    return standby


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
    """The Debian (or ``CDCD_PG_BINDIR``) server bin directory, or None without ``initdb``."""
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


def binary_version(bindir: Path) -> int:
    """The major version of the server in `bindir` (``postgres --version``)."""
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"\) (\d+)", out)
    if match is None:
        raise PgError(f"cannot read the version of {bindir}/postgres: {out!r}")
    return int(match.group(1))


def pgserver_install() -> Path | None:
    """``pginstall`` of the ``pgserver`` wheel (PostgreSQL 16), found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    return root if (root / "bin" / "initdb").exists() else None


def _readable_copy(pginstall: Path) -> Path:
    """A copy of the wheel's server that the ``postgres`` user can run; returns its bindir.

    The binaries find ``share/`` and ``lib/`` relative to themselves and libpq through
    ``$ORIGIN/../../../pgserver.libs``, so the copy keeps the wheel's layout.
    """
    top = Path(tempfile.mkdtemp(prefix="cdcd-pgserver-"))
    os.chmod(top, 0o755)
    shutil.copytree(pginstall, top / "pgserver" / "pginstall",
                    ignore=shutil.ignore_patterns("include", "*.a", "ecpg"))
    libs = pginstall.parent.parent / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, top / "pgserver.libs")
    for d in (top / "pgserver", top):
        os.chmod(d, 0o755)
    _copies.append(top)
    return top / "pgserver" / "pginstall" / "bin"


_copies: list[Path] = []
_installs: dict[int, Path] | None = None


def find_installs() -> dict[int, Path]:
    """Installed server versions (only `SUPPORTED_VERSIONS`) → bindir, the first found of each wins."""
    global _installs
    if _installs is not None:
        return _installs
    found: dict[int, Path] = {}
    candidates: list[Path] = []
    if (debian := find_bindir()) is not None:
        candidates.append(debian)
    candidates += [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    if (wheel := pgserver_install()) is not None:
        candidates.append(wheel / "bin")
    for bindir in candidates:
        if not (bindir / "initdb").exists():
            continue
        try:
            version = binary_version(bindir)
        except (OSError, subprocess.CalledProcessError, PgError):
            continue
        if version in SUPPORTED_VERSIONS and version not in found:
            found[version] = bindir
    _installs = found
    return found


def runnable_bindir(version: int, run_as: pwd.struct_passwd | None) -> Path:
    """The bindir of `version`, copied where `run_as` can execute it when it is not."""
    bindir = find_installs()[version]
    if run_as is not None and not _accessible_by(bindir / "postgres", run_as):
        bindir = _readable_copy(bindir.parent)
        _installs[version] = bindir  # type: ignore[index]  # copy once per session
    return bindir


def _accessible_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` (not root) traverse to and execute `path`?  Checked from the mode bits."""
    for part in [*reversed(path.parents), path]:
        try:
            st = part.stat()
        except OSError:
            return False
        bit = 0o001
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid == user.pw_gid or st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
            bit = 0o010
        if not st.st_mode & bit:
            return False
    return True


def requested_versions(config: pytest.Config) -> tuple[list[int], bool]:
    """The versions to run (from ``--pg-versions`` / the environment), and whether explicit."""
    text = config.getoption("pg_versions", None) or os.environ.get(VERSIONS_ENV, "")
    if not text.strip():
        return list(SUPPORTED_VERSIONS), False
    try:
        versions = sorted({int(v) for v in re.split(r"[,\s]+", text.strip()) if v})
    except ValueError:
        raise pytest.UsageError(f"--pg-versions / {VERSIONS_ENV}: expected e.g. 15,16, got {text!r}") from None
    unknown = [v for v in versions if v not in SUPPORTED_VERSIONS]
    if unknown:
        raise pytest.UsageError(f"PostgreSQL {unknown} not supported by the fixtures "
                                f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
    return versions, True


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

_session_clusters: dict[int, PgCluster] = {}
_db_counter = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pg-versions", dest="pg_versions", default=None,
                     help=f"PostgreSQL major versions the pg tests run on, e.g. 15,16 (default: every "
                          f"supported one installed; env {VERSIONS_ENV})")


ALL_VERSIONS_MODULES = ("test_e2e_", "test_pg_versions", "test_fixtures")
"""Modules whose tests run on every version by default: the end-to-end suite and the fixtures."""


def versions_for(metafunc: pytest.Metafunc) -> list[int]:
    """The versions one test runs on.

    ``--pg-versions`` given: every listed version.  By default: every supported version for
    the end-to-end suite (`ALL_VERSIONS_MODULES`) and tests marked ``all_pg_versions``;
    the first (15) for the rest, and for tests running the Debezium engine (``jvm``),
    whose side-by-side comparisons are made on the reference version.
    """
    versions, explicit = requested_versions(metafunc.config)
    if explicit:
        return versions
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    everywhere = (module.startswith(ALL_VERSIONS_MODULES)
                  or metafunc.definition.get_closest_marker("all_pg_versions") is not None)
    if everywhere and "jvm" not in metafunc.fixturenames:
        return versions
    return versions[:1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses the cluster once per chosen server version (`versions_for`)."""
    if "pg_cluster" not in metafunc.fixturenames:
        return
    versions = versions_for(metafunc)
    metafunc.parametrize("pg_cluster", versions, indirect=True, scope="session",
                         ids=[f"pg{v}" for v in versions])


def start_cluster(version: int, *, settings: dict[str, str] | None = None) -> PgCluster:
    """``initdb`` and start a new cluster of `version`; skips (or fails, when asked for) if missing."""
    if version not in find_installs():
        _missing(version)
    run_as = _server_user()
    bindir = runnable_bindir(version, run_as)
    basedir = Path(tempfile.mkdtemp(prefix=f"cdcd-pg{version}-"))
    os.chmod(basedir, 0o700)
    cluster = PgCluster(bindir, basedir, run_as=run_as, version=version)
    if settings:
        cluster.settings.update(settings)
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
    return cluster


def _missing(version: int) -> None:
    where = "the pgserver wheel (pip install pgserver)" if version == 16 else f"postgresql-{version}"
    message = f"PostgreSQL {version} server binaries not found ({where}): run scripts/install-deps"
    if _explicit_versions:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


_explicit_versions = False


def pytest_configure(config: pytest.Config) -> None:
    global _explicit_versions
    _explicit_versions = requested_versions(config)[1]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    version: int = getattr(request, "param", SUPPORTED_VERSIONS[0])
    cluster = start_cluster(version)
    _session_clusters[version] = cluster
    try:
        yield cluster
    finally:
        _session_clusters.pop(version, None)
        cluster.destroy()


@pytest.fixture
def pg_standby_pair(request: pytest.FixtureRequest) -> Iterator[StandbyPair]:
    """A fresh PostgreSQL 16 primary with a streaming hot standby, both destroyed after the test.

    ``@pytest.mark.standby_settings(name="value", ...)`` changes the standby's settings.
    """
    if 16 not in requested_versions(request.config)[0]:
        pytest.skip("PostgreSQL 16 not selected (--pg-versions / CDCD_TEST_PG_VERSIONS)")
    marker = request.node.get_closest_marker("standby_settings")
    settings = {k: str(v) for k, v in marker.kwargs.items()} if marker else None
    primary = start_cluster(16)
    try:
        pair = StandbyPair(primary, start_standby(primary, settings=settings))
    except BaseException:
        primary.destroy()
        raise
    try:
        yield pair
    finally:
        pair.destroy()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for top in _copies:
        shutil.rmtree(top, ignore_errors=True)
    _copies.clear()


@pytest.fixture(autouse=True)
def _heal_pg_cluster() -> Iterator[None]:
    """After each test, restart the shared clusters if the test stopped or reconfigured one."""
    yield
    for cluster in list(_session_clusters.values()):
        cluster.heal()


@pytest.fixture
def pg_db(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    global _db_counter
    _db_counter += 1
    name = re.sub(r"[^a-z0-9_]+", "_", request.node.originalname.lower()).strip("_")
    db = PgDatabase(pg_cluster, f"{DB_PREFIX}{_db_counter}_{name}"[:63])
    db.create()
    try:
        yield db
    finally:
        pg_cluster.heal()
        db.drop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests using a cluster ``pg`` and ``pg<version>`` (``-m "not pg"``, ``-m pg16``)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if {"pg_cluster", "pg_db", "pg_standby_pair"} & names:
            item.add_marker(pytest.mark.pg)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "pg_cluster" in callspec.params:
            item.add_marker(getattr(pytest.mark, f"pg{callspec.params['pg_cluster']}"))
        if "pg_standby_pair" in names:
            item.add_marker(pytest.mark.pg16)
