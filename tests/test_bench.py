"""The benchmarks still run (quick mode): figures are printed and written, not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

#: Runs alone, after the files that run two at a time (make pytest):
#: it measures, and takes every core while it does.
pytestmark = pytest.mark.serial

EXPECTED = [
    "jobs_per_s_kitcn",
    "jobs_per_s_raw",
    "ratio_e2e",
    "jobs_per_s_tuned",
    "ratio_e2e_tuned",
    "ratio_schedule",
    "ratio_schedule_same_metadata",
    "ratio_raw_search_attributes_only",
    "events_per_job_kitcn",
    "events_per_job_raw",
    "lateness_ms_p50_5",
    "lateness_ms_p99_20",
    "lateness_ms_max_20",
    "status_get_p50_ms",
    "status_list_ms",
    "worker_rss_mb_50_pending",
    "cron_sync_s_5",
    "cron_resync_writes",
    "rpc_p50_ms",
    "direct_query_p50_ms",
    "call_query_p50_ms",
    "direct_mutation_p50_ms",
    "call_mutation_p50_ms",
    "direct_mutation_with_schedule_p50_ms",
    "call_mutation_with_schedule_p50_ms",
    "direct_queries_per_s",
    "call_queries_per_s",
    "ratio_direct_queries",
    "guard_delete_p50_ms",
    "guard_terminate_p50_ms",
    "ratio_debounced_schedule",
    "debounce_calls_per_run",
    # The plain job's costs (bench.costs), the headline of the per-job table.
    "server_cpu_ms_per_job",
    "worker_cpu_ms_per_job",
    "history_bytes_per_job",
]
#: The shapes whose per-job costs are measured side by side, and what is measured of each.
SHAPES = ["plain", "delayed", "keyed", "capped", "cron", "direct_mutation", "raw", "tuned"]
COSTS = [
    "server_cpu_ms_per_job",
    "worker_cpu_ms_per_job",
    "history_events_per_job",
    "history_bytes_per_job",
    "persistence_requests_per_job",
    "persistence_writes_per_job",
    "visibility_writes_per_job",
    "visibility_writes_per_job_estimated",
    "frontend_requests_per_job",
    "matching_tasks_per_job",
]


def run_quick(module: str, out: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m <module> --quick --json out``: what it printed, and the figures it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def test_quick_benchmark_prints_and_writes_every_figure(tmp_path) -> None:
    done, figures = run_quick("bench", tmp_path / "bench.json", 300)
    for key in EXPECTED:
        assert key in figures, key
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, (key, figures[key])
        assert key in done.stdout
    assert figures["machine"]["cores"] >= 1
    assert figures["mode"] == "quick"
    assert list(figures["costs"]) == SHAPES
    for shape, costs in figures["costs"].items():
        assert all(isinstance(costs[key], (int, float)) and costs[key] >= 0 for key in COSTS), (shape, costs)
        assert costs["history_events_per_job"] >= 5 and costs["history_bytes_per_job"] > 0, (shape, costs)
        assert any(line.startswith(shape + " ") for line in done.stdout.splitlines()), shape
    # Every job is written to the store at least at its creation, and to visibility when it closes.
    assert all(figures["costs"][shape]["persistence_writes_per_job"] > 0.5 for shape in SHAPES)
    # A capped job asks its gate for a slot and gives it back: events of its own, and the gate's
    # workflow tasks on the server.
    capped, plain = figures["costs"]["capped"], figures["costs"]["plain"]
    assert capped["history_events_per_job"] > plain["history_events_per_job"]
    assert capped["matching_tasks_per_job"] > plain["matching_tasks_per_job"]


def test_quick_hot_path_benchmark_prints_every_variant(tmp_path) -> None:
    """``python -m bench.hotpath --quick``: kitcn, kitcn on the SDK's slots, the tuned shape."""
    done, figures = run_quick("bench.hotpath", tmp_path / "hotpath.json", 120)
    for variant in ("kitcn", "kitcn_sdk_slots", "tuned"):
        for figure in ("jobs_per_s", "process_cpu_ms_per_job", "server_cpu_ms_per_job"):
            assert figures[f"{figure}_{variant}"] > 0, (figure, variant)
            assert f"{figure}_{variant}" in done.stdout
        assert 0 <= figures[f"matched_workflow_tasks_per_job_{variant}"] <= 1.5, variant
    assert figures["ratio_kitcn_tuned"] > 0 and figures["ratio_kitcn_sdk_slots_tuned"] > 0
