"""SPEC §18 in small: ``python -m bench.chaos --quick`` (300 jobs, every fault kind at least once).

One run (module fixture) in a subprocess, several properties (tests) of its JSON report: the
mixed load (mutations on the SQL store, actions, delayed, canceled, keyed and capped jobs,
cron runs) under worker SIGKILLs, a server kill -9 and restart, network cuts through the
run's proxy and, when PostgreSQL is reachable, killed database sessions; then every job
checked against the ledgers. About a minute on a 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testapp_sql.databases import POSTGRES_ADMIN, postgres_reachable

ROOT = Path(__file__).resolve().parents[2]
JOBS = 300
#: The run's own bound; the test's is a little longer.
RUN_TIMEOUT_S = 240

pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S + 60)


@pytest.fixture(scope="module")
async def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("chaos")
    command = [sys.executable, "-m", "bench.chaos", "--jobs", str(JOBS), "--quick", "--seed", "7"]
    command += ["--dir", str(directory / "run"), "--json", str(directory / "report.json")]
    if await postgres_reachable():
        command += ["--database", POSTGRES_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=RUN_TIMEOUT_S)
    path = directory / "report.json"
    assert path.exists(), done.stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(path.read_text())
    result["exit_status"] = done.returncode
    return result


def test_every_fault_kind_happened(report: dict[str, Any]) -> None:
    assert report["worker_kills"] >= 1 and report["server_restarts"] >= 1 and report["partitions"] >= 1
    if report["database"] == "postgresql":
        assert report["db_kills"] >= 1 and report["db_sessions_killed"] >= 1


def test_every_kind_of_job_ran(report: dict[str, Any]) -> None:
    kinds = report["kinds"]
    expected = {"now_mutation", "now_action", "delayed_mutation", "delayed_action", "canceled", "keyed", "capped"}
    assert expected <= set(kinds) and kinds["cron"] >= 2
    assert report["jobs"] >= JOBS


def test_every_job_is_final_within_the_settle_time(report: dict[str, Any]) -> None:
    assert report["settled"] and report["final"] == report["jobs"], report["examples"]


def test_nothing_is_lost_or_doubled(report: dict[str, Any]) -> None:
    violations = {k: report[k] for k in ("lost", "mutations_doubled", "actions_doubled", "unknown_runs")}
    assert violations == dict.fromkeys(violations, 0), report["examples"]
    assert report["key_mismatches"] == 0


def test_canceled_jobs_never_ran(report: dict[str, Any]) -> None:
    assert report["canceled_ran"] == report["canceled_unasked"] == report["cancel_ignored"] == 0, report["examples"]
    assert report["states"]["canceled"] >= report["kinds"]["canceled"]


def test_capped_runs_never_exceed_their_cap(report: dict[str, Any]) -> None:
    assert report["cap_exceeded"] == 0 and report["cap_most_at_once"] <= report["cap_bound"]


def test_the_run_exits_zero_when_all_holds(report: dict[str, Any]) -> None:
    assert report["ok"] and report["exit_status"] == 0
