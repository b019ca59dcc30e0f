"""SIGTERM to a worker (``kitcn-temporal worker``): running actions finish or are reported; no job is lost.

One scenario, several properties. The worker runs with ``--graceful-timeout 3``: short actions
(1 s) finish within it, held actions (waiting for a file that never comes) are cut off and
reported, and jobs due later wait, pending, for the next worker.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from clihelpers import Launcher, Running
from faultkit import HERE, FaultApp, fault_app
from helpers import token, wait_state
from kitcn_temporal import STATE_KINDS, ScheduledFunction
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for

#: Runs alone, after the files that run two at a time (make pytest):
#: its bounds on shutdown times hold on an unloaded machine.
pytestmark = pytest.mark.serial

GRACEFUL_S = 3.0
SHORT, HELD, LATER_ACTIONS, LATER_MUTATIONS = 4, 3, 4, 8
#: When the later jobs fall due: well after the first worker has stopped.
LATER_MS = 10_000
TRANSIENT = "transient error while executing action work.record"


@dataclass
class Outcome:
    fault: FaultApp
    token: str
    short: list[str]
    held: list[str]
    later: list[str]
    #: The later jobs' states once the first worker had exited.
    later_at_exit: set[str]
    pids: tuple[int, int]
    exit_code: int
    #: Seconds from SIGTERM to the process's exit.
    stop_s: float
    stderr: str
    #: Each job's activity outcome in its history when the worker had exited (before any restart).
    reported: dict[str, list[str]]
    rows: dict[str, ScheduledFunction]
    effects: Counter[str]


async def activity_outcomes(fault: FaultApp, job_id: str) -> list[str]:
    closing = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed out",
    }
    events = [e async for e in fault.client.get_workflow_handle(job_id).fetch_history_events()]
    return [closing[e.event_type] for e in events if e.event_type in closing]


async def start_worker(launcher: Launcher, fault: FaultApp) -> Running:
    worker = await launcher(
        "worker", "--app", "faultapp", "--task-queue", fault.queue, "--database", fault.url,
        "--graceful-timeout", str(GRACEFUL_S), "--crons", "", cwd=HERE,
    )  # fmt: skip
    await worker.wait_output("worker serving")
    return worker


@pytest.fixture(scope="module")
async def outcome(
    temporal_server: DevServer, client: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outcome]:
    tok, directory = token(), tmp_path_factory.mktemp("graceful")
    launcher = Launcher(temporal_server.address, directory)
    async with fault_app(temporal_server.address, directory / "app") as fault:
        try:
            first = await start_worker(launcher, fault)
            schedule = fault.kitcn.scheduler
            quick = {"ledger": str(fault.ledger), "duration_ms": 1000}
            endless = {"ledger": str(fault.ledger), "release": str(directory / "never")}
            short = [await schedule.run_after(0, "work.record", quick) for _ in range(SHORT)]
            held = [await schedule.run_after(0, "work.record", endless) for _ in range(HELD)]
            later = [
                await schedule.run_after(LATER_MS, "work.record", {"ledger": str(fault.ledger)})
                for _ in range(LATER_ACTIONS)
            ]
            later += [await schedule.run_after(LATER_MS, "work.bump", {"token": tok}) for _ in range(LATER_MUTATIONS)]
            await wait_for(lambda: len(fault.ledger_runs()) == SHORT + HELD, timeout=30)

            first.process.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            exit_code = await asyncio.wait_for(first.process.wait(), 60)
            stop_s = time.monotonic() - stopping
            reported = {j: await activity_outcomes(fault, j) for j in short + held}
            later_at_exit = {(await wait_state(fault.kitcn, j, *STATE_KINDS)).state.kind for j in later}

            second = await start_worker(launcher, fault)
            rows = {job_id: await wait_state(fault.kitcn, job_id, timeout=60) for job_id in short + held + later}
            yield Outcome(
                fault,
                tok,
                short,
                held,
                later,
                later_at_exit,
                (first.process.pid, second.process.pid),
                exit_code,
                stop_s,
                first.err.read_text(),
                reported,
                rows,
                await fault.effects(tok),
            )
        finally:
            await launcher.kill_all()


def test_the_worker_stops_cleanly_within_its_graceful_timeout(outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stop_s < GRACEFUL_S + 10
    assert "worker stopped" in outcome.stderr and "Traceback" not in outcome.stderr


def test_actions_that_finish_within_the_graceful_timeout_succeed(outcome: Outcome) -> None:
    for job_id in outcome.short:
        assert outcome.reported[job_id] == ["completed"]
        assert outcome.rows[job_id].state.kind == "success"
        assert [event for event, _ in outcome.fault.ledger_runs()[job_id]] == ["start", "done"]


def test_actions_cut_off_by_the_shutdown_are_reported_as_transient_failures(outcome: Outcome) -> None:
    for job_id in outcome.held:
        # Reported by the stopping worker itself, not found out later through a timeout.
        assert outcome.reported[job_id] == ["failed"]
        row = outcome.rows[job_id]
        assert row.state.kind == "failed"
        assert row.state.error is not None and row.state.error.startswith(TRANSIENT), row.state.error
        assert "shut down" in row.state.error


def test_jobs_due_after_the_shutdown_run_once_on_the_next_worker(outcome: Outcome) -> None:
    assert outcome.later_at_exit == {"pending"}
    assert {outcome.rows[j].state.kind for j in outcome.later} == {"success"}
    mutations = [j for j in outcome.later if outcome.rows[j].name == "work.bump"]
    actions = [j for j in outcome.later if outcome.rows[j].name == "work.record"]
    assert outcome.effects == Counter(dict.fromkeys(mutations, 1))
    runs = outcome.fault.ledger_runs()
    _, second = outcome.pids
    assert {j: runs[j] for j in actions} == {j: [("start", second), ("done", second)] for j in actions}
