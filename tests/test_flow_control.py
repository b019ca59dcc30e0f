"""docs/semantics.md §10: idempotency keys, priority, rate limits and concurrency, on Temporal's own means."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from conftest import connect
from helpers import token, wait_state
from kitcn_temporal import App, CRPCError, KitcnClient, create_caller, private_action, private_mutation, private_query
from kitcn_temporal.ops._devserver import DevServer
from testapp import flow, targets
from testapp.probe import RUNS, wait_for

# -- idempotency keys -------------------------------------------------------------------------


async def test_the_same_key_gives_the_same_job_and_starts_it_once(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule.options(key=f"touch:{tok}")
    first = await schedule.now.touch(token=tok)
    again = await schedule.after(5000).touch(token=tok)  # another time, the same job
    assert again == first
    done = await wait_state(kitcn, first)
    assert done.state.kind == "success" and done.key == f"touch:{tok}"
    assert await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok}, key=f"touch:{tok}") == first
    assert len(RUNS[tok]) == 1


async def test_a_key_keeps_its_job_whatever_the_jobs_state(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await kitcn.scheduler.run_after(60_000, "targets.touch", {"token": tok}, key=f"k:{tok}")
    await kitcn.scheduler.cancel(job_id)
    assert (await wait_state(kitcn, job_id)).state.kind == "canceled"
    assert await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok}, key=f"k:{tok}") == job_id
    assert RUNS[tok] == []


@pytest.mark.parametrize(
    ("name", "args"),
    [("targets.touch", {"token": "other"}), ("targets.touch_action", {"token": "same"})],
    ids=["other arguments", "another function"],
)
async def test_the_same_key_for_other_work_is_a_conflict(kitcn: KitcnClient, name: str, args: dict) -> None:
    key = f"conflict:{token()}"
    job_id = await kitcn.scheduler.run_after(60_000, "targets.touch", {"token": "same"}, key=key)
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.run_after(60_000, name, args, key=key)
    assert err.value.code == "CONFLICT" and key in err.value.message
    await kitcn.scheduler.cancel(job_id)


async def test_a_key_from_a_mutation_is_buffered_and_a_retried_attempt_reuses_it(kitcn: KitcnClient) -> None:
    tok = token()
    key = f"retried:{tok}"
    mutation = await create_caller(kitcn, flow).schedule.now.schedule_keyed_then_fail_once(token=tok, key=key)
    assert (await wait_state(kitcn, mutation)).state.kind == "success"
    job_id = await kitcn.client.get_workflow_handle(mutation).result()
    assert RUNS[f"{tok}:attempts"] == [1, 2]
    job = await kitcn.system.get(job_id)
    assert job is not None and job.key == key and job.state.kind == "pending"
    assert await create_caller(kitcn, flow).schedule_keyed(token=tok, key=key) == job_id
    await kitcn.scheduler.cancel(job_id)


async def test_a_mutation_asking_a_taken_key_for_other_work_fails_and_schedules_nothing(kitcn: KitcnClient) -> None:
    tok = token()
    key = f"taken:{tok}"
    taken = await kitcn.scheduler.run_after(60_000, "targets.touch", {"token": tok}, key=key)
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, flow).schedule_keyed(token=tok, key=key)
    assert err.value.code == "CONFLICT"
    assert (await kitcn.system.get(taken)).name == "targets.touch"  # type: ignore[union-attr]
    await kitcn.scheduler.cancel(taken)


@pytest.mark.parametrize("key", ["", "x" * 10_000, "tab\there", "new\nline", 7], ids=repr)
async def test_a_malformed_key_is_a_bad_request_and_schedules_nothing(kitcn: KitcnClient, key: object) -> None:
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.run_after(0, "targets.touch", {"token": token()}, key=key)  # type: ignore[arg-type]
    assert err.value.code == "BAD_REQUEST" and "key" in err.value.message


# -- priority ---------------------------------------------------------------------------------


async def test_with_a_backlog_and_one_worker_slot_priority_1_jobs_start_before_priority_5(client: Client) -> None:
    tok, app = token(), App([flow], task_queue=f"kitcn-priority-{token()[:8]}")
    kitcn = KitcnClient(client, app)
    low = [await kitcn.scheduler.run_after(0, "flow.record_order", {"token": tok}, priority=5) for _ in range(4)]
    high = [await kitcn.scheduler.run_after(0, "flow.record_order", {"token": tok}, priority=1) for _ in range(4)]
    # The worker comes once every job waits: the server hands the backlog out by priority.
    async with Worker(client, task_queue=app.task_queue, max_concurrent_workflow_tasks=2):
        await wait_for(lambda: len(RUNS[tok]) == 8, timeout=30)
    assert set(RUNS[tok][:4]) == set(high) and set(RUNS[tok][4:]) == set(low)
    row = await kitcn.system.get(high[0])
    assert row is not None and row.priority == 1


async def test_a_procedures_priority_is_its_jobs_default_and_a_call_overrides_it(client: Client) -> None:
    tok, app = token(), App([flow], task_queue=f"kitcn-priority-{token()[:8]}")
    kitcn = KitcnClient(client, app)
    overridden = await kitcn.scheduler.run_after(0, "flow.urgent", {"token": tok}, priority=5)
    default = await kitcn.scheduler.run_after(0, "flow.urgent", {"token": tok})
    async with Worker(client, task_queue=app.task_queue, max_concurrent_workflow_tasks=2):
        await wait_for(lambda: len(RUNS[tok]) == 2, timeout=30)
    assert RUNS[tok] == [default, overridden]
    assert [(await kitcn.system.get(j)).priority for j in (default, overridden)] == [1, 5]  # type: ignore[union-attr]


@pytest.mark.parametrize("priority", [0, 6, 2.5, True, "1"], ids=repr)
async def test_a_priority_outside_1_to_5_is_a_bad_request_at_the_call(kitcn: KitcnClient, priority: object) -> None:
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.run_after(0, "targets.touch", {"token": token()}, priority=priority)  # type: ignore[arg-type]
    assert err.value.code == "BAD_REQUEST" and "1 (first) to 5 (last)" in err.value.message


# -- rate limits and concurrency ----------------------------------------------------------------


async def ten_limited_jobs(kitcn: KitcnClient) -> tuple[list[str], list[float]]:
    """Runs 10 jobs of ``flow.limited`` (2 a second) to success: their ids and start times."""
    tok = token()
    jobs = [await create_caller(kitcn, flow).schedule.now.limited(token=tok) for _ in range(10)]
    for job_id in jobs:
        assert (await wait_state(kitcn, job_id, timeout=60)).state.kind == "success"
    return jobs, sorted(RUNS[tok])


async def test_ten_jobs_limited_to_two_a_second_spread_over_seconds(kitcn: KitcnClient) -> None:
    _, starts = await ten_limited_jobs(kitcn)
    # The server lets a small burst through, then 2 a second: 10 starts take 3.5 s or more.
    assert starts[-1] - starts[0] >= 3.0


async def test_the_rate_limit_holds_across_workers(kitcn: KitcnClient, app: App, temporal_server: DevServer) -> None:
    # A second worker of the app, under another identity: each serves the procedure's queue.
    second = await connect(temporal_server.address, app, identity="second-worker")
    async with Worker(second, task_queue=app.task_queue):
        jobs, starts = await ten_limited_jobs(kitcn)
    assert starts[-1] - starts[0] >= 3.0  # as with one worker: the server holds the rate
    runners = set()
    for job_id in jobs:
        async for event in kitcn.client.get_workflow_handle(job_id).fetch_history_events():
            if event.HasField("activity_task_started_event_attributes"):
                runners.add(event.activity_task_started_event_attributes.identity)
    assert runners == {kitcn.client.identity, "second-worker"}  # both workers ran some


async def test_six_jobs_at_worker_concurrency_two_run_at_most_two_at_once_in_a_worker(
    kitcn: KitcnClient,
) -> None:
    tok = token()
    jobs = [await create_caller(kitcn, flow).schedule.now.render(token=tok) for _ in range(6)]
    for job_id in jobs:
        assert (await wait_state(kitcn, job_id, timeout=60)).state.kind == "success"
    assert len(RUNS[tok]) == 6
    assert max(RUNS[tok]) == 2  # two did run together: the limit, not a lack of work


async def test_a_limited_mutation_runs_on_its_own_task_queue_and_still_retries_like_a_mutation(
    kitcn: KitcnClient, client: Client
) -> None:
    tok = token()
    job_id = await create_caller(kitcn, flow).schedule.now.serial_mutation(token=tok)
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    history = await client.get_workflow_handle(job_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert [a.task_queue.name for a in scheduled] == [f"{kitcn.task_queue}@flow.serial_mutation"]
    assert scheduled[0].retry_policy.maximum_attempts == 0  # unlimited, as for every mutation


# -- declarations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "declare",
    [
        lambda: private_mutation.priority(0),
        lambda: private_mutation.priority(6),
        lambda: private_action.rate_limit(per_second=0),
        lambda: private_action.rate_limit(per_second=-1),
        lambda: private_action.rate_limit(per_second=float("inf")),
        lambda: private_action.concurrency(0),
        lambda: private_action.concurrency(1.5),  # type: ignore[arg-type]
        lambda: private_action.worker_concurrency(0),
        lambda: private_action.concurrency(2, key="user"),  # type: ignore[arg-type]
        lambda: private_query.concurrency(2).query(lambda ctx: None),
    ],
    ids=[
        "priority 0",
        "priority 6",
        "per_second 0",
        "per_second < 0",
        "per_second inf",
        "concurrency 0",
        "concurrency 1.5",
        "worker_concurrency 0",
        "concurrency key not callable",
        "concurrency on a query",
    ],
)
def test_a_bad_flow_control_declaration_is_a_bad_request(declare) -> None:
    with pytest.raises(CRPCError) as err:
        declare()
    assert err.value.code == "BAD_REQUEST"
    assert isinstance(err.value, ValueError)  # like every other mistake a builder refuses


async def test_a_job_scheduled_by_a_limited_procedure_runs_on_the_apps_task_queue(kitcn: KitcnClient) -> None:
    tok = token()
    scheduler = await create_caller(kitcn, flow).schedule.now.limited_scheduler(token=tok)
    assert (await wait_state(kitcn, scheduler)).state.kind == "success"
    job_id = await kitcn.client.get_workflow_handle(scheduler).result()
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert RUNS[tok] == [job_id]
