"""docs/semantics.md §3, cancel: pending -> canceled; running action keeps running; finished -> no-op;
unknown -> NOT_FOUND."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from helpers import status_of, token, wait_state
from kitcn_temporal import CRPCError, KitcnClient, create_caller
from testapp import producers, targets
from testapp.probe import RUNS, gate, wait_for


async def test_cancel_pending_job_makes_it_canceled_and_it_never_runs(kitcn: KitcnClient, client) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule
    job_id = await schedule.after(1500).touch(token=tok)
    # A job due at the same moment: once it has run, the canceled one's time has passed too.
    sentinel = await schedule.after(1500).touch(token=f"{tok}:sentinel")
    await schedule.cancel(job_id)
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "canceled"
    assert job.completed_time is not None
    # The row says canceled once the request returned; the workflow closes as soon as a worker
    # runs its next task (docs/semantics.md §5, §17).
    canceled = WorkflowExecutionStatus.CANCELED
    await wait_for(lambda: _status_is(client, job_id, canceled), timeout=10)
    assert (await wait_state(kitcn, sentinel)).state.kind == "success"
    assert RUNS[tok] == []


async def _status_is(client: Client, job_id: str, status: WorkflowExecutionStatus) -> bool:
    return await status_of(client, job_id) == status


async def test_cancel_running_action_keeps_it_running_and_records_its_outcome(kitcn: KitcnClient, client) -> None:
    tok = token()
    schedule = create_caller(kitcn, producers).schedule
    job_id = await schedule.now.gated_scheduler(token=tok)
    await wait_for(lambda: "started" in RUNS[tok])
    assert (await kitcn.system.get(job_id)).state.kind == "inProgress"
    await schedule.cancel(job_id)
    assert (await kitcn.system.get(job_id)).state.kind == "inProgress"
    gate(tok).set()
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "success"
    assert await status_of(client, job_id) == WorkflowExecutionStatus.COMPLETED
    ids = await client.get_workflow_handle(job_id).result()
    # Scheduled before the cancel request: pending as asked. After it: created canceled.
    assert (await kitcn.system.get(ids["before"])).state.kind == "pending"
    assert (await wait_state(kitcn, ids["after"])).state.kind == "canceled"
    await kitcn.scheduler.cancel(ids["before"])


async def test_cancel_finished_job_is_a_no_op(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.touch(token=tok)
    done = await wait_state(kitcn, job_id)
    await kitcn.scheduler.cancel(job_id)
    assert await kitcn.system.get(job_id) == done


async def test_cancel_unknown_job_is_not_found(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.cancel("no-such-job")
    assert err.value.code == "NOT_FOUND" and "no-such-job" in err.value.message


async def test_cancel_from_a_mutation_checks_the_id_at_the_call(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, producers).cancel_it(token=token(), job_id="missing-job")
    assert err.value.code == "NOT_FOUND"


@pytest.mark.parametrize("bad", ["", "x" * 1001, "tab\there", 42, None])
async def test_cancel_malformed_id_is_a_bad_request(kitcn: KitcnClient, bad) -> None:
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.cancel(bad)
    assert err.value.code == "BAD_REQUEST"


async def test_cancel_a_direct_call_id_is_not_found(kitcn: KitcnClient, client) -> None:
    """Only jobs are scheduled functions: other workflows' ids are unknown to the table."""
    handle = await client.start_workflow(
        "kitcn.Call", id=f"other-{token()}", task_queue="nowhere", args=[], execution_timeout=timedelta(seconds=30)
    )
    with pytest.raises(CRPCError, match="NOT_FOUND"):
        await kitcn.scheduler.cancel(handle.id)
    await handle.terminate()


@pytest.mark.parametrize("target", ["always_transient", "always_overruns"])
async def test_cancel_of_a_retrying_mutation_starts_no_new_attempt_and_ends_it_canceled(
    kitcn: KitcnClient, client, target: str
) -> None:
    """A mutation that keeps failing transiently, or times out on every attempt, retries
    without end: a cancel request is its end."""
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, f"targets.{target}", {"token": tok})
    await wait_for(lambda: len(RUNS[tok]) >= 2, timeout=30)
    await kitcn.scheduler.cancel(job_id)
    attempts = list(RUNS[tok])
    job = await wait_state(kitcn, job_id, timeout=15)
    assert job.state.kind == "canceled"
    await wait_for(lambda: _closed(client, job_id), timeout=15)
    assert await status_of(client, job_id) == WorkflowExecutionStatus.CANCELED
    # An attempt already running when the cancel came may be counted; none starts after it.
    assert len(RUNS[tok]) <= len(attempts) + 1


async def test_cancel_of_an_action_between_its_retries_ends_it_canceled(kitcn: KitcnClient, client) -> None:
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, "targets.slowly_retried_action", {"token": tok})
    await wait_for(lambda: RUNS[tok] == [1], timeout=30)  # failed once; the next attempt is 3 s away
    await kitcn.scheduler.cancel(job_id)
    job = await wait_state(kitcn, job_id, timeout=10)
    assert job.state.kind == "canceled"
    assert await status_of(client, job_id) == WorkflowExecutionStatus.CANCELED
    assert RUNS[tok] == [1]


async def _closed(client, job_id: str) -> bool:
    return await status_of(client, job_id) != WorkflowExecutionStatus.RUNNING
