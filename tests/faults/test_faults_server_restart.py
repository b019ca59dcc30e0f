"""The Temporal server restarted with delayed jobs pending: after the restart every job runs, once.

A dev server of its own on a SQLite file (``--db-filename``). ``SIZES.restart_jobs`` jobs (500
in both modes; four mutations writing through ``ctx.db`` to one action appending to a ledger)
fall due a few seconds ahead. The server stops before they are due and stays down past their
due time, then starts again on the same port and file. The worker keeps running through the
outage: the SDK retries its polls and reconnects, so a user's worker needs no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from faultkit import SIZES, FaultApp, WorkerProcess, Workers, fault_app, final_rows
from helpers import token
from kitcn_temporal import ScheduledFunction, setup_namespace
from kitcn_temporal.ops._devserver import free_port, start_dev_server
from testapp.probe import wait_for

#: Seconds from the first schedule call to the jobs' due time: room to schedule them all.
DUE_IN_S = 12.0
#: Seconds the server stays down after the jobs fell due.
DOWN_PAST_DUE_S = 2.0

#: The whole scenario runs in the first test's setup (its module fixture), within its time limit.
#: Runs alone, after the files that run two at a time (make pytest):
#: its bounds on recovery times hold on an unloaded machine.
pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


@dataclass
class Outcome:
    fault: FaultApp
    token: str
    jobs: dict[str, str]
    due_ms: int
    stopped: float
    restarted: float
    worker: WorkerProcess
    rows: dict[str, ScheduledFunction]
    effects: Counter[str]
    listed: int

    def of(self, name: str) -> list[str]:
        return [job_id for job_id, n in self.jobs.items() if n == name]


async def schedule_delayed(fault: FaultApp, tok: str, count: int, due_ms: int) -> dict[str, str]:
    limit = asyncio.Semaphore(32)

    async def one(i: int) -> tuple[str, str]:
        name, args = ("work.record", {"ledger": str(fault.ledger)}) if i % 5 == 4 else ("work.bump", {"token": tok})
        async with limit:
            return await fault.kitcn.scheduler.run_at(due_ms, name, args), name

    return dict(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.fixture(scope="module")
async def outcome(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outcome]:
    directory, tok = tmp_path_factory.mktemp("restart"), token()
    db_file, port = directory / "temporal.db", free_port()
    server = start_dev_server(db_file=db_file, port=port, log_path=directory / "server.log")
    try:
        async with fault_app(server.address, directory / "app") as fault:
            await setup_namespace(fault.client)
            workers = Workers(server.address, fault)
            try:
                worker = await workers.start()
                due_ms = int(time.time() * 1000 + DUE_IN_S * 1000)
                jobs = await schedule_delayed(fault, tok, SIZES.restart_jobs, due_ms)
                assert time.time() * 1000 < due_ms - 1000, "scheduling took too long: the jobs fell due"
                server.stop()
                stopped = time.time()
                await asyncio.sleep(due_ms / 1000 + DOWN_PAST_DUE_S - time.time())
                server = start_dev_server(db_file=db_file, port=port, log_path=directory / "server.log")
                restarted = time.time()
                rows = await final_rows(fault, list(jobs), timeout=120)
                listed = await wait_for(lambda: listed_successes(fault, SIZES.restart_jobs), timeout=30)
                yield Outcome(
                    fault, tok, jobs, due_ms, stopped, restarted, worker, rows, await fault.effects(tok), listed
                )
            finally:
                await workers.stop_all()
    finally:
        server.stop()


async def listed_successes(fault: FaultApp, expected: int) -> int | None:
    rows = await fault.kitcn.system.list(state="success", limit=expected + 100)
    return len(rows) if len(rows) >= expected else None


def test_the_worker_keeps_running_through_the_outage(outcome: Outcome) -> None:
    assert outcome.worker.process.returncode is None
    pids = {pid for lines in outcome.fault.ledger_runs().values() for _, pid in lines}
    assert pids == {outcome.worker.pid}


def test_every_delayed_job_runs_once_after_the_restart(outcome: Outcome) -> None:
    assert len(outcome.rows) == SIZES.restart_jobs
    assert Counter(row.state.kind for row in outcome.rows.values()) == Counter(success=SIZES.restart_jobs)
    mutations, actions = outcome.of("work.bump"), outcome.of("work.record")
    assert outcome.effects == Counter(dict.fromkeys(mutations, 1))
    runs = outcome.fault.ledger_runs()
    assert {j: [event for event, _ in runs[j]] for j in actions} == {j: ["start", "done"] for j in actions}


def test_jobs_due_while_the_server_was_down_run_once_it_is_back(outcome: Outcome) -> None:
    assert outcome.stopped < outcome.due_ms / 1000 < outcome.restarted
    completed = [row.completed_time for row in outcome.rows.values()]
    assert all(c is not None and c / 1000 >= outcome.restarted - 1 for c in completed)


def test_the_status_table_lists_every_job_after_the_restart(outcome: Outcome) -> None:
    assert outcome.listed == SIZES.restart_jobs
