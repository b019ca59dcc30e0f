"""deploy/: a real Prometheus scrapes a real worker and evaluates kitcn's alerts; promtool accepts
the rules and their unit tests pass; the dashboard and the rules use only metrics a worker exports.

Prometheus and promtool come from Debian's ``prometheus`` package (``.ci/run`` installs it);
the tests that need them are skipped, saying so, when they are missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from clihelpers import Launcher
from conftest import ROOT
from helpers import metric_value, scrape, token, wait_state
from kitcn_temporal import KitcnClient
from kitcn_temporal._devserver import DevServer, free_port
from testapp.probe import wait_for

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Debian's prometheus package (apt-get install prometheus)"
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="needs promtool, from Debian's prometheus package (apt-get install prometheus)"
)

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "kitcn-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "kitcn-dashboard.json"
FINISHED = "kitcn_jobs_finished_total"
#: Documented and alerted on, exported by a worker only while jobs wait on a cap or a pause.
OPTIONAL = {"kitcn_jobs_waiting"}
#: Series Prometheus makes itself for every target it scrapes.
SYNTHETIC = {"up"}


@dataclass
class ScrapedWorker:
    """A ``kitcn-temporal worker --metrics-port`` process that has run a few jobs."""

    port: int
    task_queue: str
    #: Its metrics once every job had ended.
    text: str


@pytest.fixture(scope="module")
async def metrics_worker(
    temporal_server: DevServer, client: Client, kitcn: KitcnClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScrapedWorker]:
    """The worker command with metrics, after jobs that succeed, fail, run an action, start late
    and schedule jobs of their own."""
    port, queue = free_port(), f"kitcn-alerting-{uuid.uuid4().hex[:8]}"
    launcher = Launcher(temporal_server.address, tmp_path_factory.mktemp("alerting-worker"))
    try:
        process = await launcher(
            "worker", "--app", "testapp", "--task-queue", queue, "--crons", "", "--metrics-port", str(port)
        )
        await process.wait_output("worker serving")
        producer = KitcnClient(client, kitcn.app, task_queue=queue)
        tok = token()
        jobs = [
            await producer.scheduler.run_after(0, "producers.schedule_three_flaky", {"token": tok}),
            await producer.scheduler.run_after(0, "targets.developer_error", {"token": tok}),
            await producer.scheduler.run_after(0, "targets.touch_action", {"token": tok}),
            await producer.scheduler.run_after(300, "targets.touch", {"token": tok}),
        ]
        for job_id in jobs:
            await wait_state(producer, job_id)

        async def all_ended() -> str | None:
            text = await scrape(port)
            # The four jobs above and the three the first one scheduled.
            return text if metric_value(text, FINISHED, task_queue=queue) >= 7 else None

        yield ScrapedWorker(port, queue, await wait_for(all_ended, timeout=30))
    finally:
        await launcher.kill_all()


@pytest.fixture(scope="module")
async def prometheus(metrics_worker: ScrapedWorker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Debian's Prometheus scraping ``worker`` every second and evaluating kitcn's rules; its URL."""
    assert PROMETHEUS is not None
    base = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        # The job name the rules (KitcnWorkerDown) and the compose file's Prometheus use.
        "scrape_configs": [
            {"job_name": "kitcn-worker", "static_configs": [{"targets": [f"127.0.0.1:{metrics_worker.port}"]}]}
        ],
    }
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (base / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {process.returncode}: {(base / 'prometheus.log').read_text()}"
                )
            return await _get_status(f"{url}/-/ready") == 200

        await wait_for(ready, timeout=30, interval=0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _get_status(url: str) -> int:
    def get() -> int:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except OSError:
            return 0

    return await asyncio.to_thread(get)


async def api(url: str, path: str, **params: str) -> Any:
    """``data`` of a Prometheus HTTP API answer (``GET url/api/v1/path?params``)."""

    def get() -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    return await asyncio.to_thread(get)


async def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant PromQL query's vector."""
    result: list[dict[str, Any]] = (await api(url, "query", query=promql))["result"]
    return result


# -- Prometheus scrapes a worker --------------------------------------------------------------


@needs_prometheus
async def test_prometheus_scrapes_the_jobs_series_of_a_worker_with_their_labels(
    prometheus: str, metrics_worker: ScrapedWorker
) -> None:
    selector = f'{FINISHED}{{task_queue="{metrics_worker.task_queue}"}}'

    async def scraped() -> list[dict[str, Any]] | None:
        series = await query(prometheus, selector)
        return series if sum(float(s["value"][1]) for s in series) >= 7 else None

    series = await wait_for(scraped, timeout=30, interval=0.5)
    ended = {(s["metric"]["function"], s["metric"]["state"]): float(s["value"][1]) for s in series}
    assert ended == {
        ("producers.schedule_three_flaky", "success"): 1,
        ("targets.touch", "success"): 4,
        ("targets.developer_error", "failed"): 1,
        ("targets.touch_action", "success"): 1,
    }
    for s in series:
        labels = s["metric"]
        assert labels["__name__"] == FINISHED and labels["job"] == "kitcn-worker"
        assert labels["instance"] == f"127.0.0.1:{metrics_worker.port}" and labels["namespace"] == "default"
    # The worker started the three jobs its mutation scheduled.
    (started,) = await query(
        prometheus,
        f'sum(kitcn_jobs_scheduled_total{{function="targets.touch",task_queue="{metrics_worker.task_queue}"}})',
    )
    assert float(started["value"][1]) == 3


@needs_prometheus
async def test_prometheus_computes_start_lateness_quantiles_by_function(
    prometheus: str, metrics_worker: ScrapedWorker
) -> None:
    p99 = await query(
        prometheus,
        "histogram_quantile(0.99, sum by (function, le) "
        f'(kitcn_job_start_lateness_seconds_bucket{{task_queue="{metrics_worker.task_queue}"}}))',
    )
    late = {s["metric"]["function"]: float(s["value"][1]) for s in p99}
    assert set(late) >= {"targets.touch", "targets.touch_action", "targets.developer_error"}
    assert all(0 <= seconds <= 30 for seconds in late.values()), late


@needs_prometheus
async def test_kitcns_alert_rules_load_and_evaluate_without_error_on_a_workers_series(prometheus: str) -> None:
    declared = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}

    async def evaluated() -> list[dict[str, Any]] | None:
        groups = (await api(prometheus, "rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = rules and all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if done else None

    rules = await wait_for(evaluated, timeout=30, interval=0.5)
    assert {rule["name"] for rule in rules} == declared
    assert all(rule["type"] == "alerting" for rule in rules)
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
    # The worker answers its scrapes: the rule on that has nothing to say.
    assert await query(prometheus, 'ALERTS{alertname="KitcnWorkerDown"}') == []


# -- promtool --------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_accepts_the_rules_file() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout


@needs_promtool
def test_promtool_accepts_the_compose_prometheus_config_and_the_rules_it_loads() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert RULES.name in checked.stdout


@needs_promtool
def test_each_alert_fires_on_its_synthetic_series_and_not_on_look_alikes() -> None:
    tested = promtool("test", "rules", "kitcn-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# -- every metric the dashboard and the rules use is one a worker exports --------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\w+")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_VALUES = re.compile(r"^label_values\((?:(.*),)?\s*\w+\s*\)$", re.S)


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression reads (or a Grafana ``label_values(...)`` query)."""
    found = _LABEL_VALUES.match(promql.strip())
    if found:
        promql = found.group(1) or ""
    for pattern in (_STRING, _LABEL_MATCHERS, _GROUPING, _RANGE, _VARIABLE):
        promql = pattern.sub(" ", promql)
    names = set()
    for match in _IDENTIFIER.finditer(promql):
        if match.group(1) is None and match.group(0) not in _KEYWORDS:  # a call is a function
            names.add(match.group(0))
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def rule_queries() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exported_names(text: str) -> set[str]:
    """Sample names in Prometheus text (histograms as ``_bucket``, ``_sum``, ``_count``) and the
    names of its ``# TYPE`` lines."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def test_metric_names_are_read_from_promql_as_prometheus_reads_them() -> None:
    expr = (
        'sum by (function) (rate(kitcn_jobs_finished_total{state="failed", x=~"a|b"}[15m])) / 60 '
        "and on (function) histogram_quantile(0.99, max without (le) (h_bucket[$__rate_interval])) > bool 1 "
        "or count(up)"
    )
    assert metric_names(expr) == {"kitcn_jobs_finished_total", "h_bucket", "up"}
    assert metric_names('label_values(kitcn_jobs_finished_total{namespace=~"$namespace"}, function)') == {
        "kitcn_jobs_finished_total"
    }
    assert metric_names("label_values(namespace)") == set()


def test_the_rules_read_the_jobs_metrics_the_waiting_gauge_the_slots_and_up() -> None:
    used = set().union(*(metric_names(q) for q in rule_queries()))
    assert used == {
        "kitcn_jobs_finished_total",
        "kitcn_job_start_lateness_seconds_bucket",
        "kitcn_jobs_waiting",
        "temporal_worker_task_slots_available",
        "up",
    }


def test_every_dashboard_panel_has_a_query_on_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_the_queries_use_is_one_a_worker_exports(metrics_worker: ScrapedWorker, source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else rule_queries()
    used = set().union(*(metric_names(q) for q in queries))
    exported = exported_names(metrics_worker.text)
    assert {"kitcn_jobs_finished_total", "temporal_worker_task_slots_available"} <= exported
    assert sorted(used - exported - SYNTHETIC - OPTIONAL) == []
