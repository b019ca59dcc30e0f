"""docs/semantics.md §3-§4 under a worker SIGKILLed several times in one run while mixed jobs run or wait.

One scenario (module fixture), several properties (tests): ``SIZES.kill_jobs`` jobs (300 in
both modes), half mutations writing through ``ctx.db`` (a third of them scheduling a
follow-up job from inside the mutation), half actions appending to a ledger and running
0.2 to 3 s, due over 5 s per kill. The first worker kills itself right after committing a
mutation that scheduled a job, before reporting it; each later one is SIGKILLed while
actions are mid-run. ``SIZES.kills`` kills (5), a restart after each.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from faultkit import HEARTBEAT, SIZES, STICKY, WORKFLOW_TASK_TIMEOUT, FaultApp, Workers, fault_app, final_rows
from helpers import token
from kitcn_temporal import ScheduledFunction
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for

#: A job hit by a kill is final this long after the kill (or its due time) at the latest:
#: a mutation lost inside a workflow task waits out the task timeout, an action its heartbeat
#: timeout, then the sticky queue hands it to the new worker; the rest is margin for a noisy box.
SLACK = WORKFLOW_TASK_TIMEOUT + HEARTBEAT + STICKY + timedelta(seconds=20)
#: An action killed mid-run fails this long after the kill at the latest, not after its 10-min
#: action timeout: its heartbeat times out, the sticky queue hands the job over, and, when the
#: worker that took it over is killed in turn, its workflow task times out once more.
ACTION_BOUND = HEARTBEAT + STICKY + WORKFLOW_TASK_TIMEOUT + timedelta(seconds=10)
#: Seconds over which the jobs fall due, per kill.
SPAN_PER_KILL_S = 5.0
TRANSIENT = "transient error while executing action work.record"

#: The whole scenario runs in the first test's setup (its module fixture), within its time limit.
#: Runs alone, after the files that run two at a time (make pytest):
#: its bounds on heartbeat timeouts hold on an unloaded machine.
pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


@dataclass
class Kill:
    at: float
    pid: int
    #: Action jobs with a ledger ``start`` from the killed process and no ``done``.
    mid_run: set[str]


@dataclass
class Outcome:
    fault: FaultApp
    token: str
    #: Job id -> procedure name, for every job the test scheduled.
    jobs: dict[str, str]
    #: Mutation job id -> the follow-up job it scheduled (for ``follow=True`` bumps).
    followups: dict[str, str]
    kills: list[Kill]
    rows: dict[str, ScheduledFunction]
    effects: Counter[str]
    ledger: dict[str, list[tuple[str, int]]]
    #: The mutation whose worker died between its commit and its report.
    died_after: str
    #: When the last worker (the one left running) was up.
    last_restart: float

    def of(self, name: str) -> list[str]:
        return [job_id for job_id, n in self.jobs.items() if n == name]


async def produce(fault: FaultApp, tok: str, count: int, span_s: float) -> dict[str, str]:
    """Schedule ``count`` mixed jobs falling due over ``span_s`` seconds from now."""
    start_ms = time.time() * 1000 + 1000
    limit = asyncio.Semaphore(32)

    async def one(i: int) -> tuple[str, str]:
        due = start_ms + span_s * 1000 * i / count
        if i % 2 == 0:
            name, args = "work.bump", {"token": tok, "follow": i % 6 == 0}
        else:
            name, args = "work.record", {"ledger": str(fault.ledger), "duration_ms": 200 + (i * 397) % 2800}
        async with limit:
            return await fault.kitcn.scheduler.run_at(due, name, args), name

    return dict(await asyncio.gather(*(one(i) for i in range(count))))


def mid_run(fault: FaultApp, pid: int) -> set[str]:
    return {
        job_id
        for job_id, lines in fault.ledger_runs().items()
        if ("start", pid) in lines and ("done", pid) not in lines
    }


async def kill_repeatedly(workers: Workers, fault: FaultApp, kills: int) -> tuple[list[Kill], str, float]:
    """The kills, the job the first worker died after (committed, not reported), and when the
    last worker was up."""
    first = await workers.start("--kill-after-commits", "20")
    await asyncio.wait_for(first.process.wait(), 60)
    done: list[Kill] = [Kill(time.time(), first.pid, mid_run(fault, first.pid))]
    assert "dying after " in first.output(), first.err.read_text()[-2000:]
    died_after = first.output().split("dying after ")[1].split()[0]
    while len(done) < kills:
        worker = await workers.start()
        await wait_for(lambda w=worker: time.time() - w.started > 1.5 and len(mid_run(fault, w.pid)) >= 3, timeout=60)
        at = await worker.kill()
        done.append(Kill(at, worker.pid, mid_run(fault, worker.pid)))
    await workers.start()  # the last worker runs everything that is left
    return done, died_after, time.time()


@pytest.fixture(scope="module")
async def outcome(
    temporal_server: DevServer, client: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outcome]:
    # ``client`` (the suite's) has set the namespace up: search attributes for every job.
    tok = token()
    async with fault_app(temporal_server.address, tmp_path_factory.mktemp("kill")) as fault:
        workers = Workers(temporal_server.address, fault)
        try:
            jobs = await produce(fault, tok, SIZES.kill_jobs, SPAN_PER_KILL_S * SIZES.kills)
            kills, died_after, last_restart = await kill_repeatedly(workers, fault, SIZES.kills)
            rows = await final_rows(fault, list(jobs), timeout=180)
            followups = {}  # each follow=True bump returned the id of the job it scheduled
            for job_id, name in jobs.items():
                if name == "work.bump" and rows[job_id].args.get("follow"):
                    followups[job_id] = await fault.client.get_workflow_handle(job_id).result()
            rows.update(await final_rows(fault, list(followups.values()), timeout=60))
            effects, ledger = await fault.effects(tok), fault.ledger_runs()
            yield Outcome(fault, tok, jobs, followups, kills, rows, effects, ledger, died_after, last_restart)
        finally:
            await workers.stop_all()


def test_every_kill_hit_actions_mid_run(outcome: Outcome) -> None:
    assert len(outcome.kills) == SIZES.kills
    assert all(kill.mid_run for kill in outcome.kills), [len(k.mid_run) for k in outcome.kills]


def test_every_mutation_job_succeeds_with_its_effect_exactly_once(outcome: Outcome) -> None:
    bumps = outcome.of("work.bump")
    assert {outcome.rows[j].state.kind for j in bumps} == {"success"}
    assert {j: outcome.effects[j] for j in bumps} == dict.fromkeys(bumps, 1)


def test_jobs_scheduled_from_mutations_exist_once_and_run_once(outcome: Outcome) -> None:
    followups = list(outcome.followups.values())
    assert len(set(followups)) == len(outcome.followups) == SIZES.kill_jobs // 6 + (SIZES.kill_jobs % 6 > 0)
    assert {outcome.rows[j].state.kind for j in followups} == {"success"}
    assert {j: outcome.effects[j] for j in followups} == dict.fromkeys(followups, 1)
    # Nothing else wrote an effect: no job ran that the test did not schedule or expect.
    assert set(outcome.effects) == set(outcome.of("work.bump")) | set(followups)


def test_a_mutation_killed_between_commit_and_report_runs_and_schedules_once(outcome: Outcome) -> None:
    job_id = outcome.died_after
    assert outcome.jobs[job_id] == "work.bump"
    assert outcome.rows[job_id].state.kind == "success" and outcome.effects[job_id] == 1
    followup = outcome.followups[job_id]
    assert outcome.rows[followup].state.kind == "success" and outcome.effects[followup] == 1


def test_no_action_runs_twice(outcome: Outcome) -> None:
    starts = {job_id: [e for e, _ in lines].count("start") for job_id, lines in outcome.ledger.items()}
    assert set(starts) <= set(outcome.of("work.record"))
    assert max(starts.values()) == 1


def test_actions_killed_mid_run_fail_with_a_transient_error_within_the_heartbeat_timeout(outcome: Outcome) -> None:
    for kill in outcome.kills:
        for job_id in kill.mid_run:
            row = outcome.rows[job_id]
            assert row.state.kind == "failed", row
            assert row.state.error is not None and row.state.error.startswith(TRANSIENT), row.state.error
            assert row.completed_time is not None
            assert row.completed_time / 1000 - kill.at < ACTION_BOUND.total_seconds(), row


def test_every_other_action_succeeds_or_fails_as_lost_with_its_worker(outcome: Outcome) -> None:
    killed_mid_run = set().union(*(kill.mid_run for kill in outcome.kills))
    for job_id in set(outcome.of("work.record")) - killed_mid_run:
        row, lines = outcome.rows[job_id], outcome.ledger.get(job_id, [])
        if row.state.kind == "success":
            assert [e for e, _ in lines] == ["start", "done"], (row, lines)
        else:  # handed to a worker that died before it could start or report it
            assert row.state.kind == "failed" and (row.state.error or "").startswith(TRANSIENT), row


def test_actions_due_after_the_last_restart_all_succeed(outcome: Outcome) -> None:
    due_later = [j for j in outcome.of("work.record") if outcome.rows[j].scheduled_time / 1000 > outcome.last_restart]
    assert due_later
    assert {j: outcome.rows[j].state.kind for j in due_later} == dict.fromkeys(due_later, "success")
    assert {j: [e for e, _ in outcome.ledger[j]] for j in due_later} == {j: ["start", "done"] for j in due_later}


def test_no_job_stays_pending_or_in_progress_past_its_deadline(outcome: Outcome) -> None:
    kill_times = [kill.at for kill in outcome.kills]
    for job_id, row in outcome.rows.items():
        assert row.completed_time is not None, row
        done = row.completed_time / 1000
        hit_by = [at for at in kill_times if at <= done]
        deadline = max([row.scheduled_time / 1000, *hit_by]) + SLACK.total_seconds()
        assert done <= deadline, (job_id, row.state, done - deadline)
