"""The ``cdcd`` command: ``run`` streams, ``check`` is the preflight.

Exit codes: 0 ok, 1 unexpected error, 2 bad configuration, 3 PostgreSQL
refused (fix the source), 4 Kafka refused (fix the sink), 5 something was
unreachable (retrying later may work). SIGTERM and SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import structlog

from cdcd import __version__, native
from cdcd import config as config_mod
from cdcd.errors import CdcdError

EXIT_OK = 0
EXIT_ERROR = 1


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (keys are Debezium property names)")
    parser.add_argument("--debezium-config", metavar="CONNECTOR_JSON",
                        help="a Debezium PostgreSQL connector's JSON config, run with the same meaning "
                             "(--config, CDCD_* and flags override it)")
    for f in config_mod.option_fields():
        flag = f.metadata["flag"]
        if flag:
            parser.add_argument(flag, dest=f.name, choices=f.metadata["choices"], help=f.metadata["help"],
                                default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdcd", description="PostgreSQL → Debezium-compatible change events")
    parser.add_argument("--version", action="version", version=f"cdcd {__version__} ({native.describe()})")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_common(sub.add_parser("run", help="stream changes until stopped"))
    _add_common(sub.add_parser("check", help="preflight: report whether run would work"))
    install = sub.add_parser("install-ddl-capture", help="create the event triggers behind "
                             "schema.changes.mode=event-trigger (needs a superuser's --dsn)")
    _add_common(install)
    install.add_argument("--ddl-schema", default="public", help="schema of the trigger functions (default public)")
    _add_common(sub.add_parser("uninstall-ddl-capture", help="drop the DDL capture's event triggers and functions"))
    return parser


def load_config(args: argparse.Namespace) -> config_mod.Config:
    overrides: dict[str, Any] = {f.name: getattr(args, f.name, None) for f in config_mod.option_fields()}
    base: dict[str, Any] | None = None
    if args.debezium_config:
        from cdcd.debezium import connector_properties as debezium_config

        translated = debezium_config.load(args.debezium_config)
        for warning in translated.warnings:
            print(f"cdcd: {args.debezium_config}: {warning}", file=sys.stderr)
        base = dict(translated.values)
        if translated.dsn:
            base["dsn"] = translated.dsn
    for warning in config_mod.env_warnings():
        print(f"cdcd: warning: {warning}", file=sys.stderr)
    return config_mod.load(args.config, overrides=overrides, base=base)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        native.require()
        config = load_config(args)
    except CdcdError as exc:
        print(f"cdcd: {exc}", file=sys.stderr)
        return exc.exit_code
    from cdcd.ops import logs

    logs.configure(config.log_level, config.log_format)
    if args.command == "check":
        return _check(config)
    if args.command in ("install-ddl-capture", "uninstall-ddl-capture"):
        from cdcd.source.ddl_capture import command

        try:
            command(config.dsn, args.command.split("-", 1)[0], getattr(args, "ddl_schema", "public"), sys.stdout)
        except CdcdError as exc:
            print(f"cdcd: {exc}", file=sys.stderr)
            return exc.exit_code
        return EXIT_OK
    return _run(config)


def _check(config: config_mod.Config) -> int:
    from cdcd.check import report, run_checks

    ok = report(run_checks(config), sys.stdout)
    return EXIT_OK if ok else EXIT_ERROR


def _run(config: config_mod.Config) -> int:
    from cdcd.daemon import Daemon
    from cdcd.ops.health import Health
    from cdcd.ops.httpserver import serve
    from cdcd.ops.metrics import Metrics
    from cdcd.ops.sdnotify import Notifier

    log = structlog.get_logger("cdcd")
    stop = threading.Event()
    notifier = Notifier()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        notifier.stopping("stopping: committing what is complete")
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info("starting", version=__version__, core=native.CORE, dsn=config.redacted_dsn(), sink=config.sink,
             slot=config.slot_name, publication=config.publication_name, topic_prefix=config.topic_prefix)
    server = None
    try:
        metrics = Metrics()
        health = Health(stall_after_s=config.health_stall_timeout_ms / 1000,
                        require_kafka=config.sink == "kafka", metrics=metrics)
        if config.http_enabled:
            server = serve(config.http_host, config.http_port, metrics=metrics, health=health)
        notifier.start_watchdog(health.healthy)
        notifier.status("starting")
        Daemon(config, stop=stop, metrics=metrics, health=health, notifier=notifier).run()
    except CdcdError as exc:
        log.error("fatal", error=str(exc), kind=type(exc).__name__)
        notifier.status(f"failed: {exc}")
        return exc.exit_code
    except Exception:
        log.exception("crashed")
        return EXIT_ERROR
    finally:
        notifier.stop_watchdog()
        if server is not None:
            server.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
