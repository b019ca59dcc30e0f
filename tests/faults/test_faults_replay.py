"""Histories of every job shape replay under ``temporalio.worker.Replayer`` without non-determinism.

The job workflows run unsandboxed (``sandboxed=False``): replay is their determinism guard.
Histories recorded from a real server are committed under ``histories/``, so a change to the
job workflow that would break jobs already running fails here. Fresh histories of every shape
are also recorded from a live dev server of this module's own (crons sync on it safely) and
replayed. ``KITCN_RECORD_HISTORIES=1`` rewrites the committed ones from the fresh recording:
do it deliberately, when a change to the workflow is meant to be incompatible.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from faultapp import work
from faultkit import HERE, FaultApp, Workers, fault_app, final_rows
from helpers import token
from kitcn_temporal import (
    JOB_WORKFLOW,
    App,
    CRPCError,
    KitcnClient,
    KitcnPlugin,
    create_caller,
    cron_jobs,
    setup_namespace,
)
from kitcn_temporal._wire import CALL_WORKFLOW, JobSpec, debounce_holder_id, now_ms
from kitcn_temporal.ops._devserver import start_dev_server
from testapp.probe import wait_for

HISTORIES = HERE / "histories"
#: Histories recorded by an earlier version (the job's spec as its input, its arguments in
#: the memo): jobs started then must keep running after an upgrade. Never re-recorded.
EARLIER = HISTORIES / "v1"
RECORD = os.environ.get("KITCN_RECORD_HISTORIES") == "1"

#: Every shape a job (or a direct call) takes, each one recorded history.
SHAPES = (
    "now", "after", "canceled", "created_canceled", "failed", "retried", "schedules_from_mutation",
    "scheduled_by_mutation", "action", "action_failed", "action_timed_out", "action_canceled_while_running",
    "action_lost_with_its_worker", "action_cut_off_by_shutdown", "cron_run", "call", "call_failed",
    "with_callback", "canceled_with_callback", "canceled_while_retrying", "unknown_procedure", "keyed",
    "own_queue", "debounced", "debounce_holder", "expired",
)  # fmt: skip
#: The shapes of the earlier version's histories.
EARLIER_SHAPES = SHAPES[:17]


#: How each shape's history ends, where it does not end ``COMPLETED``.
ENDINGS = {
    "canceled": "CANCELED",
    "created_canceled": "CANCELED",
    "canceled_with_callback": "CANCELED",
    "canceled_while_retrying": "CANCELED",
    "unknown_procedure": "FAILED",
    "expired": "FAILED",
    **dict.fromkeys(("failed", "action_failed", "action_timed_out", "call_failed"), "FAILED"),
    **dict.fromkeys(("action_lost_with_its_worker", "action_cut_off_by_shutdown"), "FAILED"),
}


def ending(history: WorkflowHistory) -> str:
    return EventType.Name(history.events[-1].event_type).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_")


def replayer() -> Replayer:
    """What a worker runs, as the plugin configures it: the job workflows and the pydantic converter."""
    return Replayer(workflows=[], plugins=[KitcnPlugin(App.discover("faultapp"))])


def committed(directory: Path = HISTORIES) -> dict[str, WorkflowHistory]:
    return {p.stem: WorkflowHistory.from_json(p.stem, p.read_text()) for p in sorted(directory.glob("*.json"))}


async def replay_failures(histories: dict[str, WorkflowHistory]) -> dict[str, str]:
    failures = {}
    for shape, history in histories.items():
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[shape] = repr(result.replay_failure)
    return failures


# -- recording ----------------------------------------------------------------------------


async def started(fault: FaultApp, job_id: str) -> None:
    await wait_for(lambda: job_id in fault.ledger_runs(), timeout=30)


async def simple_shapes(fault: FaultApp, tok: str) -> dict[str, str]:
    """Job ids of the shapes one healthy worker produces."""
    schedule, ledger = create_caller(fault.kitcn, work).schedule, str(fault.ledger)
    release = fault.directory / "release"
    ids = {
        "now": await schedule.now.bump(token=tok),
        "after": await schedule.after(1000).bump(token=tok),
        "canceled": await schedule.after(timedelta(hours=1)).bump(token=tok),
        "created_canceled": await create_caller(fault.kitcn, work).schedule_and_cancel(token=tok),
        "failed": await schedule.now.developer_error(token=tok),
        "retried": await schedule.now.flaky(token=tok),
        "schedules_from_mutation": await schedule.now.bump(token=tok, follow=True),
        "action": await schedule.now.record(ledger=ledger),
        "action_failed": await schedule.now.refuse(token=tok),
        "action_timed_out": await schedule.now.overrun(ledger=ledger, duration_ms=3000),
        "action_canceled_while_running": await schedule.now.record(ledger=ledger, release=str(release)),
    }
    ids.update(await newer_shapes(fault, tok))
    await schedule.cancel(ids["canceled"])
    await started(fault, ids["action_canceled_while_running"])
    await schedule.cancel(ids["action_canceled_while_running"])
    release.touch()
    # Direct calls of actions run in kitcn.Call workflows (queries and mutations in-process).
    await create_caller(fault.kitcn, work).actions.record(ledger=ledger)
    with pytest.raises(CRPCError, match="CONFLICT"):
        await create_caller(fault.kitcn, work).actions.refuse(token=tok)
    crons = cron_jobs()
    crons.daily(f"replay {tok}", {"hour_utc": 4, "minute_utc": 0}, work.bump, {"token": tok})
    await crons.sync(fault.kitcn)
    schedule_handle = fault.client.get_schedule_handle(f"kitcn-cron:replay {tok}")
    await schedule_handle.trigger()
    recent = await wait_for(lambda: _recent_run(schedule_handle), timeout=30)
    ids["cron_run"] = recent
    await schedule_handle.delete()
    rows = await final_rows(fault, list(ids.values()), timeout=60)
    ids["scheduled_by_mutation"] = await fault.client.get_workflow_handle(ids["schedules_from_mutation"]).result()
    await final_rows(fault, [ids["scheduled_by_mutation"]], timeout=30)
    assert rows[ids["action_canceled_while_running"]].state.kind == "success"
    return ids


async def newer_shapes(fault: FaultApp, tok: str) -> dict[str, str]:
    """Job ids of the shapes this version added: callbacks, cancels during retries, deploys,
    keys, procedures on a task queue of their own."""
    schedule, scheduler = create_caller(fault.kitcn, work).schedule, fault.kitcn.scheduler
    with_callback = schedule.options(on_complete=work.completed)
    ids = {
        "with_callback": await with_callback.now.bump(token=tok),
        "canceled_with_callback": await with_callback.after(timedelta(hours=1)).bump(token=tok),
        "canceled_while_retrying": await schedule.now.always_transient(token=tok),
        "keyed": await schedule.options(key=f"replay:{tok}", priority=2).now.bump(token=tok),
        "own_queue": await schedule.now.serial_bump(token=tok),
    }
    # Scheduled by an app that has the procedure; the fault workers do not know it.
    other = KitcnClient(fault.client, App.discover("deployapp_v1", task_queue=fault.queue))
    ids["unknown_procedure"] = await other.scheduler.run_after(0, "deploy.removed", {"ledger": str(fault.ledger)})
    await scheduler.cancel(ids["canceled_with_callback"])
    # A debounced job called twice (its holder, kitcn.Debounce, is recorded once it has closed),
    # and a job due 10 s ago with a 1 s ttl: it expires.
    ids["debounced"] = await scheduler.run_debounced(f"replay:{tok}", 500, "work.bump", {"token": tok})
    assert await scheduler.run_debounced(f"replay:{tok}", 500, "work.bump", {"token": f"{tok}:2"}) == ids["debounced"]
    ids["expired"] = await scheduler.run_at(now_ms() - 10_000, "work.bump", {"token": tok}, ttl=1000)

    # Its attempts fail 0.5 s, then 1 s apart inside one workflow task (local activity retries
    # leave no event until they end): let a few go by before the cancel.
    await asyncio.sleep(2)
    await scheduler.cancel(ids["canceled_while_retrying"])
    return ids


async def _closed(fault: FaultApp, workflow_id: str) -> bool:
    return (await fault.client.get_workflow_handle(workflow_id).describe()).close_time is not None


async def _recent_run(handle: Any) -> str | None:
    actions = (await handle.describe()).info.recent_actions
    return actions[-1].action.workflow_id if actions else None


async def direct_calls(fault: FaultApp) -> dict[str, str]:
    async def by_status() -> dict[str, str] | None:
        found = {}
        async for execution in fault.client.list_workflows(f"WorkflowType = '{CALL_WORKFLOW}'"):
            shape = {"COMPLETED": "call", "FAILED": "call_failed"}.get(
                execution.status.name if execution.status else ""
            )
            if shape is not None:  # not listed as closed yet otherwise
                found[shape] = execution.id
        return found if len(found) == 2 else None

    calls: dict[str, str] = await wait_for(by_status, timeout=30)
    return calls


async def record(fault: FaultApp, workers: Workers, tok: str) -> dict[str, WorkflowHistory]:
    first = await workers.start("--unknown-grace", "1")
    ids = await simple_shapes(fault, tok)
    ids.update(await direct_calls(fault))
    endless = {"ledger": str(fault.ledger), "release": str(fault.directory / "never")}
    schedule = fault.kitcn.scheduler
    ids["action_lost_with_its_worker"] = lost = await schedule.run_after(0, "work.record", endless)
    await started(fault, lost)
    await first.kill()
    second = await workers.start()
    await final_rows(fault, [lost], timeout=60)
    ids["action_cut_off_by_shutdown"] = cut = await schedule.run_after(0, "work.record", endless)
    await started(fault, cut)
    assert await second.stop() == 0
    await workers.start()
    await final_rows(fault, [cut], timeout=60)
    ids["debounce_holder"] = holder = debounce_holder_id(f"replay:{tok}")
    await wait_for(lambda: _closed(fault, holder), timeout=30)
    return {shape: await fault.client.get_workflow_handle(job_id).fetch_history() for shape, job_id in ids.items()}


@pytest.fixture(scope="module")
async def fresh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, WorkflowHistory]]:
    directory = tmp_path_factory.mktemp("replay")
    server = start_dev_server(log_path=directory / "server.log")
    try:
        async with fault_app(server.address, directory / "app") as fault:
            await setup_namespace(fault.client)
            workers = Workers(server.address, fault)
            try:
                histories = await record(fault, workers, token())
            finally:
                await workers.stop_all()
    finally:
        server.stop()
    if RECORD:
        for stale in HISTORIES.glob("*.json"):
            stale.unlink()
        for shape, history in histories.items():
            (HISTORIES / f"{shape}.json").write_text(history.to_json() + "\n")
    yield histories


# -- the tests ----------------------------------------------------------------------------


async def test_fresh_histories_cover_every_job_shape(fresh: dict[str, WorkflowHistory]) -> None:
    assert sorted(fresh) == sorted(SHAPES)
    assert {shape: ending(h) for shape, h in fresh.items()} == {s: ENDINGS.get(s, "COMPLETED") for s in SHAPES}


async def test_fresh_histories_of_every_job_shape_replay_without_nondeterminism(
    fresh: dict[str, WorkflowHistory],
) -> None:
    assert await replay_failures(fresh) == {}


def test_the_committed_histories_cover_every_job_shape() -> None:
    histories = committed()
    assert sorted(histories) == sorted(SHAPES)
    assert {shape: ending(h) for shape, h in histories.items()} == {s: ENDINGS.get(s, "COMPLETED") for s in SHAPES}


async def test_the_committed_histories_replay_without_nondeterminism() -> None:
    assert await replay_failures(committed()) == {}


def test_the_earlier_versions_histories_cover_its_job_shapes() -> None:
    assert sorted(committed(EARLIER)) == sorted(EARLIER_SHAPES)


async def test_jobs_started_by_the_earlier_version_replay_without_nondeterminism() -> None:
    assert await replay_failures(committed(EARLIER)) == {}


@workflow.defn(name=JOB_WORKFLOW, sandboxed=False)
class ChangedJobWorkflow:
    """The job workflow changed incompatibly: it waits a second more before running the procedure."""

    @workflow.run
    async def run(self, spec: JobSpec) -> Any:
        await workflow.sleep(timedelta(seconds=1))
        return await workflow.start_local_activity(spec.name, {}, start_to_close_timeout=timedelta(seconds=1))


async def test_an_incompatible_change_to_the_job_workflow_fails_replay() -> None:
    changed = Replayer(workflows=[ChangedJobWorkflow], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(committed(EARLIER)["now"])
