"""A burst of jobs completes, the counts match, and the worker's memory stays bounded.

``SIZES.load_jobs`` jobs (5 000 with ``KITCN_FAULTS=full``, 2 000 in CI), half mutations writing
through ``ctx.db``, half actions appending to a ledger, all due at once, against one worker
process whose resident memory is read from ``/proc/<pid>/status`` before and after the burst.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from faultkit import SIZES, FaultApp, Workers, fault_app, final_rows
from helpers import token
from kitcn_temporal._wire import JOB_WORKFLOW
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for

#: The scenario runs in the first test's setup; the 5 000-job burst alone takes about 3 minutes here.
#: Runs alone, after the files that run two at a time (make pytest):
#: its burst takes every core.
pytestmark = [pytest.mark.serial, pytest.mark.timeout(900)]

WARM_UP = 50
#: Growth of resident memory the burst may leave behind, and reach at its peak (MiB).
#: Generous: a worker here starts near 100 MiB and, over 2 000 or 5 000 jobs alike, keeps
#: about 10 MiB more and peaks about 15 MiB higher (the workflow cache is bounded).
MAX_RETAINED_MIB = 64
MAX_PEAK_GROWTH_MIB = 160


@dataclass
class Outcome:
    fault: FaultApp
    token: str
    jobs: dict[str, str]
    rss_before: float
    rss_after: float
    peak: float
    effects: Counter[str]
    statuses: dict[str, int]


async def burst(fault: FaultApp, tok: str, count: int) -> dict[str, str]:
    limit = asyncio.Semaphore(64)

    async def one(i: int) -> tuple[str, str]:
        name, args = ("work.bump", {"token": tok}) if i % 2 else ("work.record", {"ledger": str(fault.ledger)})
        async with limit:
            return await fault.kitcn.scheduler.run_after(0, name, args), name

    return dict(await asyncio.gather(*(one(i) for i in range(count))))


async def count_jobs(fault: FaultApp, status: str) -> int:
    query = f"WorkflowType = '{JOB_WORKFLOW}' AND TaskQueue = '{fault.queue}' AND ExecutionStatus = '{status}'"
    return (await fault.client.count_workflows(query)).count


@pytest.fixture(scope="module")
async def outcome(
    temporal_server: DevServer, client: object, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outcome]:
    tok = token()
    async with fault_app(temporal_server.address, tmp_path_factory.mktemp("load")) as fault:
        workers = Workers(temporal_server.address, fault)
        try:
            worker = await workers.start()
            await final_rows(fault, list(await burst(fault, f"{tok}-warm-up", WARM_UP)), timeout=60)
            rss_before, _ = worker.memory_mib()
            jobs = await burst(fault, tok, SIZES.load_jobs)
            mutations = sum(name == "work.bump" for name in jobs.values())

            async def all_ran() -> bool:
                done = sum(lines[-1][0] == "done" for lines in fault.ledger_runs().values())
                return (
                    sum((await fault.effects(tok)).values()) == mutations
                    and done == len(jobs) - mutations + WARM_UP // 2
                )

            await wait_for(all_ran, timeout=max(180, SIZES.load_jobs / 10), interval=1.0)
            rss_after, peak = worker.memory_mib()
            total = WARM_UP + SIZES.load_jobs

            async def settled() -> dict[str, int] | None:
                statuses = {s: await count_jobs(fault, s) for s in ("Completed", "Running", "Failed")}
                finished = statuses["Completed"] + statuses["Failed"] == total and statuses["Running"] == 0
                return statuses if finished else None

            statuses = await wait_for(settled, timeout=60, interval=1.0)
            yield Outcome(fault, tok, jobs, rss_before, rss_after, peak, await fault.effects(tok), statuses)
        finally:
            await workers.stop_all()


def test_every_job_of_the_burst_completes(outcome: Outcome) -> None:
    assert outcome.statuses == {"Completed": WARM_UP + SIZES.load_jobs, "Running": 0, "Failed": 0}


def test_the_counts_match(outcome: Outcome) -> None:
    mutations = [j for j, name in outcome.jobs.items() if name == "work.bump"]
    actions = [j for j, name in outcome.jobs.items() if name == "work.record"]
    assert len(mutations) + len(actions) == SIZES.load_jobs
    assert outcome.effects == Counter(dict.fromkeys(mutations, 1))
    runs = outcome.fault.ledger_runs()
    assert {j: [event for event, _ in runs[j]] for j in actions} == {j: ["start", "done"] for j in actions}


def test_the_workers_memory_stays_bounded(outcome: Outcome) -> None:
    assert outcome.rss_after - outcome.rss_before < MAX_RETAINED_MIB, (outcome.rss_before, outcome.rss_after)
    assert outcome.peak - outcome.rss_before < MAX_PEAK_GROWTH_MIB, (outcome.rss_before, outcome.peak)
