"""docs/semantics.md §14, capacity: fleet-wide caps (``.concurrency``), per-key caps, pause and
resume, held by real worker processes sharing one namespace (a cap that holds in one process
proves nothing about a fleet).

Each run of ``testapp.capacity`` writes its start and end to a ledger file the processes share
(the machine's monotonic clock): the tests count the overlaps from it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from clihelpers import cli
from helpers import token, wait_state, waiting_row, worker_process
from kitcn_temporal import App, CRPCError, KitcnClient, ScheduledFunction, create_caller
from kitcn_temporal.ops._devserver import DevServer
from testapp import callbacks, capacity
from testapp.ledger import lines
from testapp.probe import RUNS, wait_for

HOLD_MS = 400


@pytest.fixture
def queue() -> str:
    return f"kitcn-cap-{token()[:8]}"


@pytest.fixture
def workers(temporal_server: DevServer, queue: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two worker processes of the test app on ``queue`` (more may be added, all killed after)."""
    started = [worker_process(temporal_server.address, "testapp", queue) for _ in range(2)]
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture
def fleet(client: Client, queue: str, workers: list[subprocess.Popen[bytes]]) -> KitcnClient:
    """A producer of the test app on ``queue``: only the worker processes serve it."""
    return KitcnClient(client, App.discover("testapp", task_queue=queue))


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return str(tmp_path / "ledger")


def intervals(ledger: str) -> list[tuple[float, float, str, str]]:
    """(start, end, tag, user) of every run that ended."""
    starts: dict[str, tuple[float, str]] = {}
    runs = []
    for line in lines(ledger):
        what, at, tag, user = line.split(" ")
        if what == "start":
            starts[tag] = (float(at), user)
        else:
            runs.append((starts[tag][0], float(at), tag, user))
    return runs


def most_at_once(runs: list[tuple[float, float, str, str]]) -> int:
    events = sorted([(s, 1) for s, *_ in runs] + [(e, -1) for _, e, *_ in runs])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def pids(ledger: str) -> set[str]:
    return {line.rsplit(" ", 1)[1] for line in Path(ledger).read_text().splitlines()}


async def schedule_all(kitcn: KitcnClient, fn: str, ledger: str, users: list[str], hold_ms: int = HOLD_MS) -> list[str]:
    caller = create_caller(kitcn, capacity)
    return [
        await getattr(caller.schedule.now, fn)(ledger=ledger, tag=f"t{i}", hold_ms=hold_ms, user=user)
        for i, user in enumerate(users)
    ]


async def all_succeed(kitcn: KitcnClient, jobs: list[str], timeout: float = 90) -> None:
    for job_id in jobs:
        assert (await wait_state(kitcn, job_id, timeout=timeout)).state.kind == "success"


async def a_waiting_row(kitcn: KitcnClient, jobs: list[str]) -> ScheduledFunction:
    """The row of whichever of ``jobs`` waits (the order they reach the gate is the fleet's)."""

    async def found() -> ScheduledFunction | None:
        rows = [await kitcn.system.get(job_id) for job_id in jobs]
        return next((row for row in rows if row is not None and row.waiting), None)

    row: ScheduledFunction = await wait_for(found, timeout=30)
    return row


async def started(ledger: str, count: int) -> None:
    async def enough() -> bool | None:
        return len([x for x in lines(ledger) if x.startswith("start")]) >= count or None

    await wait_for(enough, timeout=60)


# -- the cap ----------------------------------------------------------------------------------


async def test_the_cap_holds_across_worker_processes(
    temporal_server: DevServer, fleet: KitcnClient, workers: list[subprocess.Popen[bytes]], ledger: str
) -> None:
    """``spread`` runs one at a time in each process (``.worker_concurrency(1)``): three processes
    could run three at once; the fleet cap of 2 holds them to two, so two processes ran together."""
    workers.append(worker_process(temporal_server.address, "testapp", fleet.task_queue))
    jobs = await schedule_all(fleet, "spread", ledger, ["u"] * 9)
    await all_succeed(fleet, jobs)
    runs = intervals(ledger)
    assert len(runs) == 9
    assert most_at_once(runs) == 2  # never more than the cap, and the cap was used
    assert len(pids(ledger)) >= 2  # by several processes: the cap is the fleet's


async def test_a_capped_action_runs_at_most_n_at_once(fleet: KitcnClient, ledger: str) -> None:
    jobs = await schedule_all(fleet, "capped", ledger, ["u"] * 8)
    await all_succeed(fleet, jobs)
    runs = intervals(ledger)
    assert len(runs) == 8
    assert most_at_once(runs) == 2


async def test_per_key_caps_serialize_each_key_while_keys_run_side_by_side(fleet: KitcnClient, ledger: str) -> None:
    jobs = await schedule_all(fleet, "per_user", ledger, ["a", "b", "a", "b", "a", "b"])
    await all_succeed(fleet, jobs)
    runs = intervals(ledger)
    for user in ("a", "b"):
        assert most_at_once([r for r in runs if r[3] == user]) == 1
    assert most_at_once(runs) == 2  # a and b side by side


async def test_a_fleet_cap_and_a_key_cap_stack(fleet: KitcnClient, ledger: str) -> None:
    jobs = await schedule_all(fleet, "stacked", ledger, ["a", "a", "b", "b", "c", "c", "d", "d"])
    await all_succeed(fleet, jobs)
    runs = intervals(ledger)
    assert most_at_once(runs) == 3
    for user in "abcd":
        assert most_at_once([r for r in runs if r[3] == user]) == 1


async def test_a_capped_mutation_takes_a_slot_too(fleet: KitcnClient, ledger: str) -> None:
    jobs = await schedule_all(fleet, "capped_mutation", ledger, ["u"] * 4, hold_ms=200)
    await all_succeed(fleet, jobs)
    assert most_at_once(intervals(ledger)) == 1


async def test_direct_action_calls_on_workers_take_slots(fleet: KitcnClient, ledger: str) -> None:
    actions = create_caller(fleet, capacity).actions
    await asyncio.gather(*(actions.capped(ledger=ledger, tag=f"c{i}", hold_ms=HOLD_MS) for i in range(5)))
    runs = intervals(ledger)
    assert len(runs) == 5
    assert most_at_once(runs) == 2


async def test_a_waiting_job_is_pending_and_says_which_cap_and_its_use(fleet: KitcnClient, ledger: str) -> None:
    jobs = await schedule_all(fleet, "capped", ledger, ["u"] * 3, hold_ms=3000)
    row = await a_waiting_row(fleet, jobs)
    assert row.state.kind == "pending"
    assert row.waiting == "concurrency: 2 of 2 running"
    keyed = await schedule_all(fleet, "per_user", ledger, ["42", "42"], hold_ms=3000)
    row = await a_waiting_row(fleet, keyed)
    assert row.waiting == "concurrency user:42: 1 of 1 running"
    await all_succeed(fleet, jobs + keyed)
    assert all(r.waiting is None for r in [await fleet.system.get(j) for j in jobs] if r is not None)


async def test_a_job_canceled_while_it_waits_never_runs_and_its_on_complete_runs(
    kitcn: KitcnClient, ledger: str
) -> None:
    caller = create_caller(kitcn, capacity)
    holders = [await caller.schedule.now.capped(ledger=ledger, tag=f"h{i}", hold_ms=3000) for i in range(2)]
    await started(ledger, 2)
    waiter = await caller.schedule.options(on_complete=callbacks.record_completion).now.capped(
        ledger=ledger, tag="waiter", hold_ms=10
    )
    await waiting_row(kitcn, waiter)
    await caller.schedule.cancel(waiter)
    assert (await wait_state(kitcn, waiter)).state.kind == "canceled"
    await all_succeed(kitcn, holders)
    assert not [x for x in lines(ledger) if " waiter " in x]
    done = await wait_for(lambda: RUNS.get(f"done:{waiter}") or None, timeout=30)
    assert done[0]["state"]["kind"] == "canceled"
    # Its place was given back: the next job runs.
    after = await caller.schedule.now.capped(ledger=ledger, tag="after", hold_ms=10)
    assert (await wait_state(kitcn, after)).state.kind == "success"


async def test_a_key_function_that_does_not_return_a_str_is_a_bad_request_naming_the_procedure(
    kitcn: KitcnClient, ledger: str
) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, capacity).schedule.now.bad_key(ledger=ledger, tag="x")
    assert err.value.code == "BAD_REQUEST"
    assert "capacity.bad_key" in err.value.message and "str" in err.value.message


# -- faults and deploys -----------------------------------------------------------------------


async def test_a_worker_killed_while_it_holds_slots_gives_them_back_within_the_heartbeat_timeout(
    temporal_server: DevServer, fleet: KitcnClient, workers: list[subprocess.Popen[bytes]], ledger: str
) -> None:
    held = await schedule_all(fleet, "capped", ledger, ["u"] * 2, hold_ms=60_000)
    await started(ledger, 2)
    holders = pids(ledger)
    for proc in workers:
        if str(proc.pid) in holders:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    workers.append(worker_process(temporal_server.address, "testapp", fleet.task_queue))
    for job_id in held:  # the lost actions fail (at most once), their slots come back
        row = await wait_state(fleet, job_id, timeout=30)
        assert row.state.kind == "failed" and "transient error" in (row.state.error or "")
    after = await schedule_all(fleet, "capped", ledger, ["u"] * 2, hold_ms=10)
    await all_succeed(fleet, after, timeout=30)


async def test_a_pause_holds_due_jobs_across_a_worker_restart_and_resume_releases_them(
    temporal_server: DevServer, fleet: KitcnClient, workers: list[subprocess.Popen[bytes]], ledger: str
) -> None:
    await fleet.system.pause("capacity.plain")
    assert "capacity.plain" in await fleet.system.paused()
    jobs = await schedule_all(fleet, "plain", ledger, ["u"] * 3, hold_ms=10)
    for job_id in jobs:
        assert (await waiting_row(fleet, job_id)).waiting == "paused"
    for proc in workers:
        proc.kill()
        proc.wait()
    workers.append(worker_process(temporal_server.address, "testapp", fleet.task_queue))
    assert "capacity.plain" in await fleet.system.paused()
    row = await fleet.system.get(jobs[0])
    assert row is not None and row.state.kind == "pending" and lines(ledger) == []
    await fleet.system.resume("capacity.plain")
    assert "capacity.plain" not in await fleet.system.paused()
    await all_succeed(fleet, jobs)
    assert len(intervals(ledger)) == 3


async def test_pause_and_resume_of_an_unknown_procedure_are_not_found(kitcn: KitcnClient) -> None:
    for verb in (kitcn.system.pause, kitcn.system.resume):
        with pytest.raises(CRPCError) as err:
            await verb("capacity.nope")
        assert err.value.code == "NOT_FOUND" and "capacity.nope" in err.value.message


async def test_a_deploy_that_changes_the_cap_governs_new_grants(
    temporal_server: DevServer, client: Client, queue: str, ledger: str
) -> None:
    producer = KitcnClient(client, App.discover("capapp", task_queue=queue))
    procs: list[subprocess.Popen[bytes]] = []

    def deploy(cap: int) -> None:
        for proc in procs:
            proc.kill()
            proc.wait()
        os.environ["KITCN_TEST_CAP"] = str(cap)
        try:
            procs[:] = [worker_process(temporal_server.address, "capapp", queue) for _ in range(2)]
        finally:
            del os.environ["KITCN_TEST_CAP"]

    try:
        deploy(1)
        jobs = [
            await producer.scheduler.run_after(0, "work.hold_slot", {"ledger": ledger, "tag": f"a{i}"})
            for i in range(4)
        ]
        await all_succeed(producer, jobs)
        assert most_at_once(intervals(ledger)) == 1
        deploy(3)
        later = [
            await producer.scheduler.run_after(0, "work.hold_slot", {"ledger": ledger, "tag": f"b{i}"})
            for i in range(6)
        ]
        await all_succeed(producer, later)
        runs = [r for r in intervals(ledger) if r[2].startswith("b")]
        assert most_at_once(runs) == 3
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def hold_job(producer: KitcnClient, ledger: str, tag: str) -> str:
    return await producer.scheduler.run_after(0, "work.hold_slot", {"ledger": ledger, "tag": tag})


# -- the command line -------------------------------------------------------------------------


async def test_jobs_pause_resume_and_paused_on_the_command_line(
    temporal_server: DevServer, app: App, kitcn: KitcnClient, ledger: str
) -> None:
    address, app_args = temporal_server.address, ["--app", "testapp", "--task-queue", app.task_queue]
    paused = await cli(address, "jobs", "pause", "capacity.plain", *app_args, "--json")
    assert paused.code == 0, paused.err
    assert paused.json() == {"name": "capacity.plain", "paused": True}
    try:
        listed = await cli(address, "jobs", "paused", *app_args, "--json")
        assert "capacity.plain" in listed.json()
        job_id = await create_caller(kitcn, capacity).schedule.now.plain(ledger=ledger, tag="cli")
        row = await waiting_row(kitcn, job_id)
        assert row.waiting == "paused"
        got = await cli(address, "jobs", "get", job_id, "--json")
        assert got.json()["paused"] is True and got.json()["waiting"] == "paused"
        text = await cli(address, "jobs", "get", job_id)
        assert "paused" in text.out
    finally:
        resumed = await cli(address, "jobs", "resume", "capacity.plain", *app_args)
    assert resumed.code == 0, resumed.err
    assert resumed.out == "capacity.plain resumed\n"
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    unknown = await cli(address, "jobs", "pause", "capacity.nope", *app_args)
    assert unknown.code != 0
    assert unknown.err.strip().count("\n") == 0 and "capacity.nope" in unknown.err  # one line, no traceback


async def test_a_job_waiting_for_a_slot_past_its_ttl_expires_and_never_runs(kitcn: KitcnClient, ledger: str) -> None:
    from datetime import timedelta

    caller = create_caller(kitcn, capacity)
    holders = [await caller.schedule.now.capped(ledger=ledger, tag=f"h{i}", hold_ms=4000) for i in range(2)]
    await started(ledger, 2)
    late = await caller.schedule.options(ttl=timedelta(seconds=1)).now.capped(ledger=ledger, tag="late", hold_ms=10)
    row = await wait_state(kitcn, late, timeout=30)
    assert row.state.kind == "failed" and "expired" in (row.state.error or "")
    await all_succeed(kitcn, holders)
    assert not [x for x in lines(ledger) if " late " in x]
    after = await caller.schedule.now.capped(ledger=ledger, tag="after", hold_ms=10)  # its place was given back
    assert (await wait_state(kitcn, after)).state.kind == "success"
