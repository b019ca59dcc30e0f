"""docs/semantics.md §4: one workflow per job, the retry classes, the states and what Temporal shows."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from conftest import HEARTBEAT, make_app
from helpers import status_of, token, wait_state, worker_process
from kitcn_temporal import KitcnClient, create_caller
from kitcn_temporal._wire import (
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    ExecOptions,
    JobSpec,
    RetrySpec,
    datetime_to_ms,
    without_defaults,
)
from testapp import targets
from testapp.probe import RUNS, gate, wait_for


async def test_success_state_agrees_with_completed_status(kitcn: KitcnClient, client) -> None:
    job_id = await create_caller(kitcn, targets).schedule.now.touch(token=token())
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "success" and job.state.error is None
    assert await status_of(client, job_id) == WorkflowExecutionStatus.COMPLETED


async def test_action_is_in_progress_while_it_runs(kitcn: KitcnClient, client) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.held_action(token=tok)
    await wait_for(lambda: RUNS[tok] == ["started"])
    job = await kitcn.system.get(job_id)
    assert job.state.kind == "inProgress"
    assert await status_of(client, job_id) == WorkflowExecutionStatus.RUNNING
    gate(tok).set()
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_pending_until_due(kitcn: KitcnClient, client) -> None:
    job_id = await create_caller(kitcn, targets).schedule.after(timedelta(minutes=10)).touch(token=token())
    assert (await kitcn.system.get(job_id)).state.kind == "pending"
    assert await status_of(client, job_id) == WorkflowExecutionStatus.RUNNING
    await kitcn.scheduler.cancel(job_id)


async def test_developer_error_fails_the_mutation_at_once(kitcn: KitcnClient, client) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.developer_error(token=tok)
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "failed"
    assert job.state.error == "ValueError: bad things"
    assert RUNS[tok] == [1]
    assert await status_of(client, job_id) == WorkflowExecutionStatus.FAILED


async def test_transient_errors_retry_the_mutation_with_backoff(kitcn: KitcnClient) -> None:
    tok = token()
    started = time.monotonic()
    job_id = await create_caller(kitcn, targets).schedule.now.flaky(token=tok)
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert RUNS[tok] == [1, 2, 3]
    assert time.monotonic() - started >= 1.4  # 0.5 s then 1 s of backoff


async def test_errors_declared_with_retry_are_transient(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.flaky_declared(token=tok)
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert RUNS[tok] == [1, 2]


async def test_actions_run_once_even_on_transient_errors(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.flaky_action(token=tok)
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "failed" and "the network is down" in job.state.error
    assert RUNS[tok] == [1]


async def test_action_with_retry_policy_opts_in_to_retries(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.retried_action(token=tok)
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert RUNS[tok] == [1, 2, 3]


async def test_crpc_error_fails_the_job_with_its_code_and_message(kitcn: KitcnClient) -> None:
    job_id = await create_caller(kitcn, targets).schedule.now.refusing_action(token=token())
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "failed"
    assert job.state.error == "CONFLICT: order already charged"


async def test_job_info_reaches_the_procedure(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.after(50).touch(token=tok)
    job = await wait_state(kitcn, job_id)
    [(_, info, auth)] = RUNS[tok]
    assert info.id == job_id and info.name == "targets.touch" and info.attempt == 1
    assert info.scheduled_time == job.scheduled_time
    assert auth is None


async def test_search_attributes_and_summary_show_function_state_and_time(kitcn: KitcnClient, client) -> None:
    job_id = await create_caller(kitcn, targets).schedule.after(timedelta(hours=1)).touch(token=token())
    job = await kitcn.system.get(job_id)
    desc = await client.get_workflow_handle(job_id).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(SA_FUNCTION) == "targets.touch"
    assert attrs.get(SA_STATE) == "pending"
    assert datetime_to_ms(attrs.get(SA_SCHEDULED_TIME)) == job.scheduled_time
    summary = await desc.static_summary()
    assert summary is not None and summary.startswith("targets.touch at ") and summary.endswith(" UTC")

    query = f"KitcnFunction='targets.touch' AND KitcnState='pending' AND WorkflowId='{job_id}'"

    async def listed() -> bool:
        return [w.id async for w in client.list_workflows(query)] == [job_id]

    await wait_for(listed)
    await kitcn.scheduler.cancel(job_id)
    canceled = f"KitcnState='canceled' AND WorkflowId='{job_id}'"

    async def relisted() -> bool:
        return [w.id async for w in client.list_workflows(canceled)] == [job_id]

    await wait_for(relisted)


async def test_every_procedure_is_an_activity_named_after_it(kitcn: KitcnClient, client) -> None:
    job_id = await create_caller(kitcn, targets).schedule.now.touch_action(token=token())
    await wait_state(kitcn, job_id)
    events = [e async for e in client.get_workflow_handle(job_id).fetch_history_events()]
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert [a.activity_type.name for a in scheduled] == ["targets.touch_action"]


async def test_worker_lost_mid_action_fails_the_job_within_the_heartbeat_timeout(
    kitcn: KitcnClient, client, temporal_server
) -> None:
    queue = f"doomed-{token()[:8]}"
    proc = worker_process(temporal_server.address, "testapp", queue, "--heartbeat", str(HEARTBEAT.total_seconds()))
    try:
        app = make_app(queue)
        doomed = KitcnClient(client, app)
        tok = token()
        job_id = await create_caller(doomed, targets).schedule.now.held_action(token=tok)
        await wait_state(doomed, job_id, "inProgress")
        # A surviving worker on the same queue records the outcome once the other is gone.
        async with Worker(client, task_queue=queue):
            os.kill(proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            job = await wait_state(kitcn, job_id, timeout=60)
            elapsed = time.monotonic() - killed
    finally:
        proc.kill()
        proc.wait()
    assert job.state.kind == "failed"
    assert job.state.error.startswith("transient error while executing action targets.held_action")
    assert elapsed < 15  # heartbeat timeout 2 s + sticky-queue fallback 3 s; action timeout 10 min
    assert await status_of(client, job_id) == WorkflowExecutionStatus.FAILED


async def test_sync_handlers_run_off_the_event_loop(kitcn: KitcnClient) -> None:
    tok = token()
    result = await create_caller(kitcn, targets).sync_touch(token=tok)
    assert result["thread"] != "MainThread"


def test_job_input_leaves_out_defaults_and_decodes_back_whole() -> None:
    converter = pydantic_data_converter.payload_converter
    mutation = JobSpec("orders.process_order", ExecOptions("mutation", 60_000), 1_795_778_778_616)
    action = JobSpec(
        "orders.charge",
        ExecOptions("action", 5_000, RetrySpec(maximum_attempts=3, non_retryable_error_types=("Refused",)), 1_000),
        None,
        canceled=True,
    )
    [payload] = converter.to_payloads([without_defaults(mutation)])
    assert payload.data == (
        b'{"name":"orders.process_order","options":{"kind":"mutation","timeout_ms":60000},'
        b'"scheduled_time":1795778778616}'
    )
    for spec in (mutation, action):
        assert converter.from_payloads(converter.to_payloads([without_defaults(spec)]), [JobSpec]) == [spec]
