"""The benchmarks still run (quick mode): figures are printed and written, not judged here."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

EXPECTED = [
    "jobs_per_s_kitcn",
    "jobs_per_s_raw",
    "ratio_e2e",
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
]


def test_quick_benchmark_prints_and_writes_every_figure(tmp_path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    for key in EXPECTED:
        assert key in figures, key
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, (key, figures[key])
        assert key in done.stdout
    assert figures["machine"]["cores"] >= 1
    assert figures["mode"] == "quick"
