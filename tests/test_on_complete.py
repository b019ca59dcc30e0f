"""docs/semantics.md §12: a job's completion callback runs once after the job ends, whatever its state."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from helpers import status_of, token, wait_state
from kitcn_temporal import CRPCError, KitcnClient, create_caller
from testapp import callbacks, targets
from testapp.probe import RUNS, wait_for


def completions(job_id: str) -> list[Any]:
    return RUNS[f"done:{job_id}"]


async def test_the_callback_gets_a_successful_jobs_result(kitcn: KitcnClient, client: Client) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule.options(on_complete=callbacks.record_completion)
    job_id = await schedule.now.touch(token=tok)
    await wait_for(lambda: len(completions(job_id)) == 1)
    assert completions(job_id) == [
        {"job_id": job_id, "name": "targets.touch", "state": {"kind": "success", "error": None}, "result": 1}
    ]
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    await wait_for(lambda: _closed(client, job_id))
    assert await status_of(client, job_id) == WorkflowExecutionStatus.COMPLETED


async def test_the_callback_gets_a_failed_jobs_error(kitcn: KitcnClient) -> None:
    job_id = await kitcn.scheduler.run_after(
        0, "targets.developer_error", {"token": token()}, on_complete="callbacks.record_completion"
    )
    await wait_for(lambda: len(completions(job_id)) == 1)
    (completion,) = completions(job_id)
    assert completion["state"] == {"kind": "failed", "error": "ValueError: bad things"}
    assert completion["result"] is None


async def test_the_callback_runs_for_a_job_canceled_while_pending(kitcn: KitcnClient, client: Client) -> None:
    schedule = create_caller(kitcn, targets).schedule.options(on_complete=callbacks.record_completion)
    job_id = await schedule.after(600_000).touch(token=token())
    await kitcn.scheduler.cancel(job_id)
    await wait_for(lambda: len(completions(job_id)) == 1)
    assert completions(job_id)[0]["state"] == {"kind": "canceled", "error": None}
    assert (await wait_state(kitcn, job_id)).state.kind == "canceled"
    await wait_for(lambda: _closed(client, job_id))
    assert await status_of(client, job_id) == WorkflowExecutionStatus.CANCELED


async def test_a_failing_callback_never_changes_the_jobs_recorded_state(kitcn: KitcnClient, client: Client) -> None:
    job_id = await kitcn.scheduler.run_after(
        0, "targets.touch", {"token": token()}, on_complete=callbacks.failing_callback
    )
    await wait_for(lambda: _closed(client, job_id))
    assert completions(job_id) == ["tried"]  # a developer error: not retried, as for any mutation
    assert (await kitcn.system.get(job_id)).state.kind == "success"  # type: ignore[union-attr]
    assert await status_of(client, job_id) == WorkflowExecutionStatus.COMPLETED


@pytest.mark.parametrize(
    ("callback", "code", "fragment"),
    [
        (callbacks.action_callback, "BAD_REQUEST", "must be a mutation"),
        (callbacks.wrong_shape, "BAD_REQUEST", "cannot take a job's completion"),
        ("callbacks.nothing_of_that_name", "NOT_FOUND", "nothing_of_that_name"),
    ],
    ids=["an action", "another input", "unknown"],
)
async def test_a_callback_is_checked_at_the_schedule_call(
    kitcn: KitcnClient, callback: Any, code: str, fragment: str
) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok}, on_complete=callback)
    assert err.value.code == code and fragment in err.value.message
    assert RUNS[tok] == []


async def _closed(client: Client, job_id: str) -> bool:
    return await status_of(client, job_id) != WorkflowExecutionStatus.RUNNING
