"""docs/semantics.md §6: a namespace is shared; each app's crons sync touches only its own schedules."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from conftest import make_app
from helpers import describe_schedule as describe
from helpers import token
from kitcn_temporal import App, CronConflictError, CronJobs, cron_jobs
from kitcn_temporal.crons._owner import MEMO_CRON, Owner
from kitcn_temporal.crons._sync import _plan
from testapp import cronjobs
from testapp.probe import wait_for


@pytest.fixture(scope="module")
def other_app() -> App:
    """A second app of the same code on a task queue of its own (no worker needed: nothing runs)."""
    return make_app()


@pytest.fixture
async def cleanup(client: Client) -> AsyncIterator[list[str]]:
    """Schedule ids to delete when the test ends (whoever created them)."""
    ids: list[str] = []
    yield ids
    for schedule_id in ids:
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise


def daily(*names: str, tok: str = "t") -> CronJobs:
    crons = cron_jobs()
    for name in names:
        crons.daily(name, {"hour_utc": 4, "minute_utc": 30}, cronjobs.tick, {"token": tok})
    return crons


async def listed(client: Client, *schedule_ids: str) -> bool:
    """All of ``schedule_ids`` appear in Temporal's (lagging) schedule list."""
    found = {entry.id async for entry in await client.list_schedules()}
    return set(schedule_ids) <= found


async def create_as_before_owners(client: Client, crons: CronJobs, app: App) -> str:
    """The schedule an older version created: no schedule memo, no app in the action memo."""
    (job,) = crons
    plan = _plan(job, app, Owner(app.name, app.task_queue))
    action = plan.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    declared = {k: v for k, v in action.memo[MEMO_CRON].items() if k not in ("app", "origin")}  # type: ignore[index]
    declared["hash"] = "a digest of the older declaration format"
    old_action = dataclasses.replace(action, memo={**action.memo, MEMO_CRON: declared})  # type: ignore[arg-type]
    await client.create_schedule(job.schedule_id, dataclasses.replace(plan.schedule, action=old_action))
    return job.schedule_id


async def action_cron_memo(client: Client, schedule_id: str) -> dict[str, Any]:
    desc = await describe(client, schedule_id)
    assert desc is not None
    memo: Any = desc.schedule.action.memo  # type: ignore[attr-defined]
    value: dict[str, Any] = (await client.data_converter.decode([memo[MEMO_CRON]]))[0]
    return value


async def test_a_sync_leaves_another_apps_crons_alone(
    client: Client, app: App, other_app: App, cleanup: list[str]
) -> None:
    tok = token()[:8]
    mine, theirs = daily(f"mine {tok}"), daily(f"theirs {tok}")
    cleanup += [f"kitcn-cron:mine {tok}", f"kitcn-cron:theirs {tok}"]
    await mine.sync(client, app)
    await theirs.sync(client, other_app)
    await wait_for(lambda: listed(client, *cleanup))

    report = await mine.sync(client, app)

    assert (report.writes, report.unchanged) == (0, [f"mine {tok}"])
    assert await describe(client, f"kitcn-cron:theirs {tok}") is not None


async def test_each_app_deletes_only_its_own_crons_no_longer_declared(
    client: Client, app: App, other_app: App, cleanup: list[str]
) -> None:
    tok = token()[:8]
    cleanup += [f"kitcn-cron:mine {tok}", f"kitcn-cron:theirs {tok}"]
    await daily(f"mine {tok}").sync(client, app)
    await daily(f"theirs {tok}").sync(client, other_app)
    await wait_for(lambda: listed(client, *cleanup))

    report = await cron_jobs().sync(client, other_app)

    assert report.deleted == [f"theirs {tok}"]
    assert await describe(client, f"kitcn-cron:mine {tok}") is not None


async def test_a_name_held_by_another_app_is_an_error_naming_both_and_nothing_is_written(
    client: Client, app: App, other_app: App, cleanup: list[str]
) -> None:
    tok = token()[:8]
    shared, fresh = f"shared {tok}", f"fresh {tok}"
    cleanup += [f"kitcn-cron:{shared}", f"kitcn-cron:{fresh}"]
    await daily(shared, tok="theirs").sync(client, other_app)
    before = await describe(client, f"kitcn-cron:{shared}")
    assert before is not None

    with pytest.raises(CronConflictError) as err:
        await daily(fresh, shared, tok="mine").sync(client, app)

    message = str(err.value)
    assert f"cron {shared!r} of app {app.name!r}" in message and f"app {other_app.name!r}" in message
    assert await describe(client, f"kitcn-cron:{fresh}") is None
    after = await describe(client, f"kitcn-cron:{shared}")
    assert after is not None and after.raw_description.conflict_token == before.raw_description.conflict_token


async def test_a_schedule_kitcn_did_not_create_is_never_touched(client: Client, app: App, cleanup: list[str]) -> None:
    name = f"foreign {token()[:8]}"
    cleanup.append(f"kitcn-cron:{name}")
    action = ScheduleActionStartWorkflow("SomeoneElsesWorkflow", id="theirs", task_queue=app.task_queue)
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))])
    await client.create_schedule(f"kitcn-cron:{name}", Schedule(action=action, spec=spec))
    await wait_for(lambda: listed(client, f"kitcn-cron:{name}"))

    report = await cron_jobs().sync(client, app)
    assert name not in report.deleted
    with pytest.raises(CronConflictError, match="a schedule kitcn-temporal did not create"):
        await daily(name).sync(client, app)

    assert await describe(client, f"kitcn-cron:{name}") is not None


async def test_the_owner_is_recorded_in_the_schedule_memo_that_the_list_returns(
    client: Client, app: App, cleanup: list[str]
) -> None:
    name = f"owned {token()[:8]}"
    cleanup.append(f"kitcn-cron:{name}")
    await daily(name).sync(client, app)

    async def listed_memo() -> Any:
        entries = [e async for e in await client.list_schedules() if e.id == f"kitcn-cron:{name}"]
        return entries and await entries[0].memo_value(MEMO_CRON)

    assert await wait_for(listed_memo) == {"app": app.name, "origin": "declared"}
    assert (await action_cron_memo(client, f"kitcn-cron:{name}"))["app"] == app.name


async def test_a_schedule_from_before_owners_is_adopted_by_the_app_of_its_task_queue(
    client: Client, app: App, cleanup: list[str]
) -> None:
    name = f"legacy {token()[:8]}"
    crons = daily(name)
    cleanup.append(await create_as_before_owners(client, crons, app))
    created = await describe(client, f"kitcn-cron:{name}")
    assert created is not None

    first, second = await crons.sync(client, app), await crons.sync(client, app)

    assert (first.updated, second.writes) == ([name], 0)
    adopted = await describe(client, f"kitcn-cron:{name}")
    assert adopted is not None and adopted.info.created_at == created.info.created_at  # kept, not re-created
    assert (await action_cron_memo(client, f"kitcn-cron:{name}"))["app"] == app.name


async def test_a_schedule_from_before_owners_belongs_to_the_app_of_its_task_queue_only(
    client: Client, app: App, other_app: App, cleanup: list[str]
) -> None:
    name = f"legacy {token()[:8]}"
    cleanup.append(await create_as_before_owners(client, daily(name), app))
    await wait_for(lambda: listed(client, f"kitcn-cron:{name}"))

    assert name not in (await cron_jobs().sync(client, other_app)).deleted
    with pytest.raises(CronConflictError, match=f"the app on task queue {app.task_queue!r}"):
        await daily(name).sync(client, other_app)
    assert await describe(client, f"kitcn-cron:{name}") is not None
    assert name in (await cron_jobs().sync(client, app)).deleted


async def test_crons_list_shows_only_this_apps_schedules(
    client: Client, app: App, other_app: App, cleanup: list[str]
) -> None:
    tok = token()[:8]
    theirs, shared = f"theirs {tok}", f"shared {tok}"
    cleanup += [f"kitcn-cron:{theirs}", f"kitcn-cron:{shared}"]
    await daily(theirs, shared).sync(client, other_app)
    await wait_for(lambda: listed(client, *cleanup))

    rows = {row.name: row for row in await daily(shared).list(client, app)}

    assert theirs not in rows
    assert (rows[shared].synced, rows[shared].held_by) == (False, f"app {other_app.name!r}")


async def test_an_app_name_owns_crons_whatever_the_task_queue(client: Client, cleanup: list[str]) -> None:
    name = f"named {token()[:8]}"
    cleanup.append(f"kitcn-cron:{name}")
    shop = App.discover("testapp", task_queue=f"shop-a-{token()[:6]}", name=f"shop-{name}")
    moved = App.discover("testapp", task_queue=f"shop-b-{token()[:6]}", name=f"shop-{name}")
    await daily(name).sync(client, shop)

    report = await daily(name).sync(client, moved)

    assert report.updated == [name]
    desc = await describe(client, f"kitcn-cron:{name}")
    assert desc is not None and desc.schedule.action.task_queue == moved.task_queue  # type: ignore[attr-defined]
