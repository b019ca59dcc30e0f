"""docs/semantics.md §5: the ``_scheduled_functions`` table on clients and inside procedures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from helpers import jobs_with_token, settle_visibility, token, wait_state
from kitcn_temporal import (
    JOB_WORKFLOW,
    STATE_KINDS,
    App,
    CRPCError,
    JobState,
    KitcnClient,
    PaginationResult,
    ScheduledFunction,
    SystemTable,
    create_caller,
)
from kitcn_temporal._wire import (
    MEMO_ARGS,
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    JobSpec,
    ms_to_datetime,
    now_ms,
    without_defaults,
)
from kitcn_temporal.jobs._status import state_of
from testapp import producers, table, targets
from testapp.probe import gate, wait_for


async def test_get_unknown_id_is_none(kitcn: KitcnClient) -> None:
    assert await kitcn.system.get("never-scheduled") is None


@pytest.mark.parametrize("bad", ["", "\x00", 7])
async def test_get_malformed_id_is_a_bad_request(kitcn: KitcnClient, bad) -> None:
    with pytest.raises(CRPCError, match="BAD_REQUEST"):
        await kitcn.system.get(bad)


async def test_row_fields_and_camel_case_dump(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.after(100).touch(token=tok)
    pending = await kitcn.system.get(job_id)
    assert isinstance(pending, ScheduledFunction)
    assert pending.completed_time is None
    done = await wait_state(kitcn, job_id)
    assert done.id == job_id and done.name == "targets.touch" and done.args == {"token": tok}
    assert done.completed_time is not None and done.completed_time >= done.scheduled_time
    dumped = done.model_dump(by_alias=True)
    assert dumped["scheduledTime"] == done.scheduled_time
    assert dumped["completedTime"] == done.completed_time
    assert dumped["state"] == {"kind": "success", "error": None}


async def test_failed_row_carries_the_error(kitcn: KitcnClient) -> None:
    job_id = await create_caller(kitcn, targets).schedule.now.developer_error(token=token())
    job = await wait_state(kitcn, job_id)
    assert job.state.model_dump() == {"kind": "failed", "error": "ValueError: bad things"}


async def test_list_filters_by_state_and_name(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule
    pending = await schedule.after(600_000).touch(token=tok)
    done = await schedule.now.touch(token=tok)
    held = await schedule.now.held_action(token=tok)
    await wait_state(kitcn, done)
    await wait_state(kitcn, held, "inProgress")

    async def listed(state: str, name: str, job_id: str) -> bool:
        rows = await kitcn.system.list(state=state, name=name, limit=1000)
        return any(r.id == job_id for r in rows) and all(r.state.kind == state and r.name == name for r in rows)

    await wait_for(lambda: listed("pending", "targets.touch", pending))
    await wait_for(lambda: listed("success", "targets.touch", done))
    await wait_for(lambda: listed("inProgress", "targets.held_action", held))
    gate(tok).set()
    await kitcn.scheduler.cancel(pending)
    await wait_for(lambda: listed("canceled", "targets.touch", pending))


async def test_list_respects_the_limit(kitcn: KitcnClient) -> None:
    tok = token()
    for _ in range(3):
        await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok})
    await settle_visibility(kitcn, tok)
    assert len(await kitcn.system.list(limit=2)) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state": "done"}, "unknown state 'done'"),
        ({"name": "orders.charge'; drop"}, "invalid procedure name"),
        ({"limit": 0}, "limit must be"),
        ({"limit": True}, "limit must be"),
    ],
)
async def test_list_rejects_bad_filters(kitcn: KitcnClient, kwargs, message) -> None:
    with pytest.raises(CRPCError, match=message) as err:
        await kitcn.system.list(**kwargs)
    assert err.value.code == "BAD_REQUEST"


async def test_procedures_read_the_table_through_ctx_system(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.after(600_000).touch(token=tok)
    row = await create_caller(kitcn, producers).read_job(token=tok, job_id=job_id)
    assert row["id"] == job_id and row["state"] == {"kind": "pending", "error": None}
    assert "scheduledTime" in row
    assert await create_caller(kitcn, producers).read_job(token=tok, job_id="nope") is None
    await kitcn.scheduler.cancel(job_id)


# Every read agrees: one rule gives a job's state in get, in list and in each state filter.

TABLE = "table.outcome"


async def ids_listed(kitcn: KitcnClient, tok: str, state: str | None = None, name: str = TABLE) -> dict[str, str]:
    """Job id -> state of the token's jobs that ``list`` returns (with ``state`` as filter)."""
    rows = await kitcn.system.list(state=state, name=name, limit=1000)
    return {r.id: r.state.kind for r in rows if r.args.get("token") == tok}


async def start_with_a_run_timeout(kitcn: KitcnClient, app: App, tok: str) -> str:
    """A job started as an operator might, with a run timeout that closes it as TimedOut."""
    job_id = f"timed-out-{tok}"
    due = now_ms() + 600_000
    spec = JobSpec(TABLE, app.exec_options(app.get(TABLE)), due)
    await kitcn.client.start_workflow(
        JOB_WORKFLOW,
        without_defaults(spec),
        id=job_id,
        task_queue=app.task_queue,
        memo={MEMO_ARGS: {"token": tok, "outcome": "ok"}},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_FUNCTION, TABLE),
                SearchAttributePair(SA_STATE, "pending"),
                SearchAttributePair(SA_SCHEDULED_TIME, ms_to_datetime(due)),
            ]
        ),
        execution_timeout=timedelta(seconds=1),
    )
    return job_id


async def test_a_terminated_job_is_failed_in_get_list_and_the_failed_filter(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, table).schedule.after(600_000).outcome(token=tok)

    await kitcn.client.get_workflow_handle(job_id).terminate(reason="by an operator")

    assert (await wait_state(kitcn, job_id)).state == JobState(kind="failed", error="terminated")

    async def agreed() -> bool:
        return await ids_listed(kitcn, tok) == {job_id: "failed"} == await ids_listed(kitcn, tok, "failed")

    await wait_for(agreed)
    assert await ids_listed(kitcn, tok, "pending") == {}


async def test_a_job_timed_out_by_its_run_timeout_is_failed_in_get_list_and_the_failed_filter(
    kitcn: KitcnClient, app: App
) -> None:
    tok = token()
    job_id = await start_with_a_run_timeout(kitcn, app, tok)

    assert (await wait_state(kitcn, job_id)).state == JobState(kind="failed", error="timed out")

    async def agreed() -> bool:
        return await ids_listed(kitcn, tok) == {job_id: "failed"} == await ids_listed(kitcn, tok, "failed")

    await wait_for(agreed)


async def test_the_state_filters_partition_the_table(kitcn: KitcnClient, app: App) -> None:
    tok = token()
    later = create_caller(kitcn, table).schedule
    expected = {
        await later.after(600_000).outcome(token=tok): "pending",
        await later.now.outcome(token=tok, outcome="hold"): "inProgress",
        await later.now.outcome(token=tok): "success",
        await later.now.outcome(token=tok, outcome="fail"): "failed",
    }
    canceled = await later.after(600_000).outcome(token=tok)
    await kitcn.scheduler.cancel(canceled)
    terminated = await later.after(600_000).outcome(token=tok)
    await kitcn.client.get_workflow_handle(terminated).terminate(reason="by an operator")
    expected |= {canceled: "canceled", terminated: "failed", await start_with_a_run_timeout(kitcn, app, tok): "failed"}
    try:
        for job_id, state in expected.items():
            await wait_state(kitcn, job_id, state)

        async def partitioned() -> bool:
            by_filter: dict[str, str] = {}
            for state in STATE_KINDS:
                rows = await ids_listed(kitcn, tok, state)
                if any(kind != state or job_id in by_filter for job_id, kind in rows.items()):
                    return False
                by_filter |= rows
            return by_filter == expected == await ids_listed(kitcn, tok)

        await wait_for(partitioned)
    finally:
        gate(tok).set()


@pytest.mark.parametrize(
    ("status", "recorded", "state"),
    [
        (WorkflowExecutionStatus.RUNNING, None, "pending"),
        (WorkflowExecutionStatus.RUNNING, "pending", "pending"),
        (WorkflowExecutionStatus.RUNNING, "inProgress", "inProgress"),
        # Recorded final while the execution still runs (e.g. a completion callback follows).
        (WorkflowExecutionStatus.RUNNING, "success", "success"),
        (WorkflowExecutionStatus.RUNNING, "canceled", "canceled"),
        (WorkflowExecutionStatus.COMPLETED, "inProgress", "success"),
        (WorkflowExecutionStatus.CANCELED, "pending", "canceled"),
        (WorkflowExecutionStatus.TERMINATED, "inProgress", "failed"),
        (WorkflowExecutionStatus.TERMINATED, "success", "success"),
        (WorkflowExecutionStatus.TIMED_OUT, None, "failed"),
        (WorkflowExecutionStatus.FAILED, "failed", "failed"),
    ],
)
def test_a_recorded_final_state_wins_then_the_closed_status_then_kitcn_state(
    status: WorkflowExecutionStatus, recorded: str | None, state: str
) -> None:
    assert state_of(status, recorded) == state


# paginate: every row, in Convex's page shape.


async def test_paginate_walks_every_row_once(kitcn: KitcnClient) -> None:
    tok = token()
    later = create_caller(kitcn, table).schedule
    scheduled = {await later.after(600_000).row(token=tok, index=i) for i in range(7)}
    await wait_for(lambda: _listed_count(kitcn, tok, 7))

    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        result = await kitcn.system.paginate(name="table.row", state="pending", page_size=3, cursor=cursor)
        sizes.append(len(result.page))
        seen += [r.id for r in result.page if r.args.get("token") == tok]
        if result.is_done:
            assert result.continue_cursor is None
            break
        cursor = result.continue_cursor
    assert sorted(seen) == sorted(scheduled)
    assert all(size <= 3 for size in sizes) and len(sizes) >= 3
    for job_id in scheduled:
        await kitcn.scheduler.cancel(job_id)


async def test_a_page_lists_the_most_recently_created_first(kitcn: KitcnClient) -> None:
    tok = token()
    later = create_caller(kitcn, table).schedule
    created = [await later.after(600_000).row(token=tok, index=i) for i in range(3)]
    for job_id in reversed(created):  # the store orders finished jobs by close time: oldest first here
        await kitcn.scheduler.cancel(job_id)

    async def page() -> list[str]:
        result = await kitcn.system.paginate(name="table.row", state="canceled", page_size=1000)
        return [r.id for r in result.page if r.args.get("token") == tok]

    async def all_three() -> bool:
        return len(await page()) == 3

    await wait_for(all_three)
    assert await page() == list(reversed(created))


async def _listed_count(kitcn: KitcnClient, tok: str, count: int) -> bool:
    rows = await kitcn.system.list(name="table.row", state="pending", limit=1000)
    return len([r for r in rows if r.args.get("token") == tok]) == count


async def test_a_page_dumps_in_convex_shape(kitcn: KitcnClient) -> None:
    await create_caller(kitcn, table).schedule.now.outcome(token=token())
    result = await kitcn.system.paginate(page_size=1)
    assert isinstance(result, PaginationResult)
    dumped = result.model_dump(by_alias=True)
    assert set(dumped) == {"page", "isDone", "continueCursor"}
    assert dumped["isDone"] is False and isinstance(dumped["continueCursor"], str)
    assert set(dumped["page"][0]) >= {"id", "name", "scheduledTime", "state"}


async def test_a_cursor_of_another_listing_is_a_bad_request(kitcn: KitcnClient) -> None:
    await create_caller(kitcn, table).schedule.now.outcome(token=token())
    cursor = (await kitcn.system.paginate(page_size=1)).continue_cursor
    assert cursor is not None
    with pytest.raises(CRPCError, match="invalid cursor") as err:
        await kitcn.system.paginate(state="failed", page_size=1, cursor=cursor)
    assert err.value.code == "BAD_REQUEST"


@pytest.mark.parametrize("cursor", ["garbage", "", "AQ", "e30", "!!!", "é", 7])
async def test_a_malformed_cursor_is_a_bad_request(kitcn: KitcnClient, cursor: object) -> None:
    with pytest.raises(CRPCError, match="invalid cursor") as err:
        await kitcn.system.paginate(cursor=cursor)  # type: ignore[arg-type]
    assert err.value.code == "BAD_REQUEST"


@pytest.mark.parametrize("page_size", [0, 1001, True, 2.5])
async def test_paginate_rejects_a_bad_page_size(kitcn: KitcnClient, page_size: object) -> None:
    with pytest.raises(CRPCError, match="page_size must be an integer from 1 to 1000") as err:
        await kitcn.system.paginate(page_size=page_size)  # type: ignore[arg-type]
    assert err.value.code == "BAD_REQUEST"


async def test_procedures_page_through_ctx_system(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, table).schedule.after(600_000).row(token=tok)
    await wait_for(lambda: _listed_count(kitcn, tok, 1))
    page = await create_caller(kitcn, table).page_jobs(name="table.row")
    assert job_id in [row["id"] for row in page["page"]]
    assert set(page) == {"page", "isDone", "continueCursor"}
    await kitcn.scheduler.cancel(job_id)


async def test_get_on_a_namespace_that_does_not_exist_raises(client: Client) -> None:
    elsewhere = Client(client.service_client, namespace=f"missing-{token()[:8]}")
    with pytest.raises(RPCError, match=r"Namespace missing-.* is not found"):
        await SystemTable(elsewhere).get("some-job")


async def test_list_gives_the_most_recently_created_job_first(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule
    finished = await schedule.now.touch(token=tok)
    await wait_state(kitcn, finished)
    pending = await schedule.after(600_000).touch(token=tok)  # created later, still running
    newest = await schedule.now.touch(token=tok)
    await wait_state(kitcn, newest)
    await settle_visibility(kitcn, tok)
    rows = jobs_with_token(await kitcn.system.list(name="targets.touch", limit=1000), tok)
    assert [r.id for r in rows] == [newest, pending, finished]
    await kitcn.scheduler.cancel(pending)
