"""The reference app (``activities/``, ``workflows/``): every example of kitcn's scheduling guide.

Runs on the suite's dev server with its own App (its own task queue; its data in a fresh
SQLite file, then in a fresh PostgreSQL schema when one is reachable) and its own
in-process worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

import activities
from activities import analytics, items, jobs, orders, reminders, reports, sessions, subscriptions
from conftest import HEARTBEAT, connect
from helpers import settle_visibility, token, wait_state
from kitcn_temporal import App, CRPCError, KitcnClient, create_caller
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for
from testapp_sql.databases import BACKENDS, POSTGRES_ADMIN, database_url, postgres_reachable
from workflows.crons import crons

DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module", params=BACKENDS)
async def ref(
    request: pytest.FixtureRequest, temporal_server: DevServer, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KitcnClient]:
    """A KitcnClient for the reference app, with its worker running in this process."""
    if request.param == "postgresql" and not await postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}")
    async with database_url(request.param, tmp_path_factory.mktemp("refapp")) as url:
        app = activities.create_app(
            database=url, task_queue=f"kitcn-ref-{uuid.uuid4().hex[:8]}", action_heartbeat_timeout=HEARTBEAT
        )
        # ``client`` has set the namespace up (search attributes) for every job started here.
        ref_client = await connect(temporal_server.address, app)
        async with Worker(ref_client, task_queue=app.task_queue):
            yield KitcnClient(ref_client, app)
        assert app.store is not None
        await app.store.dispose()


@pytest.fixture
def user(ref: KitcnClient) -> KitcnClient:
    """The reference app's client signed in as a fresh user."""
    return ref.with_auth({"user_id": f"user-{token()[:8]}"})


# -- the app itself --------------------------------------------------------------------


def test_discover_uses_the_apps_own_database_by_default() -> None:
    app = App.discover("activities")
    assert app.store is not None and app.database == activities.DATABASE == "sqlite+aiosqlite:///.kitcn/app.db"


def test_create_app_takes_a_database_and_a_task_queue(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    app = activities.create_app(database=url, task_queue="elsewhere")
    assert (app.database, app.task_queue) == (url, "elsewhere")
    assert {"orders.process_order", "orders.charge", "subscriptions.expire", "jobs.list_pending_jobs"} <= set(
        app.procedures
    )


def test_crons_are_the_guides_two() -> None:
    declared = {job.name: job for job in crons}
    assert sorted(declared) == ["cleanup stale data", "daily report"]
    cleanup, report = declared["cleanup stale data"], declared["daily report"]
    assert (cleanup.kind, cleanup.every) == ("interval", timedelta(hours=2))
    assert cleanup.procedure is sessions.cleanup_stale_data
    assert (report.kind, report.spec, report.timezone) == ("cron", "0 9 * * *", "UTC")
    assert report.procedure is reports.generate_daily_report


# -- orders: schedule.after(5000) ------------------------------------------------------


async def test_process_order_charges_the_order_five_seconds_later(ref: KitcnClient) -> None:
    caller = create_caller(ref, orders)
    order_id = await caller.create_order(customer="ada", amount_cents=1250)
    before = now_ms()
    job_id = await caller.process_order(order_id=order_id)
    after = now_ms()

    processing = await caller.get_order(order_id=order_id)
    assert (processing.status, processing.charge_job_id) == ("processing", job_id)
    job = await wait_state(ref, job_id, timeout=30)
    assert (job.name, job.state.kind, job.args) == ("orders.charge", "success", {"order_id": order_id})
    assert before + 5000 <= job.scheduled_time <= after + 5000
    paid = await caller.get_order(order_id=order_id)
    assert paid.status == "paid" and paid.paid_at >= job.scheduled_time


async def test_process_order_refuses_an_unknown_order(ref: KitcnClient) -> None:
    with pytest.raises(CRPCError) as caught:
        await create_caller(ref, orders).process_order(order_id="no-such-order")
    assert caught.value.code == "NOT_FOUND"


async def test_process_order_refuses_an_order_already_processing(ref: KitcnClient) -> None:
    caller = create_caller(ref, orders)
    order_id = await caller.create_order(customer="grace", amount_cents=500)
    first_job = await caller.process_order(order_id=order_id)
    with pytest.raises(CRPCError) as caught:
        await caller.process_order(order_id=order_id)
    assert caught.value.code == "CONFLICT"
    assert (await caller.get_order(order_id=order_id)).charge_job_id == first_job


# -- items: schedule.now ---------------------------------------------------------------


async def test_create_item_sends_its_notification_once_committed(ref: KitcnClient) -> None:
    caller = create_caller(ref, items)
    name = f"item {token()[:8]}"
    item_id = await caller.create_item(name=name)

    async def notified() -> bool:
        return (await caller.get_item(item_id=item_id)).notified_at is not None

    await wait_for(notified, timeout=30)

    async def job_row() -> object:
        rows = await ref.system.list(name="items.send_notification", limit=200)
        return next((r for r in rows if r.args == {"item_id": item_id}), None)

    job = await wait_for(job_row)
    assert (await wait_state(ref, job.id)).state.kind == "success"


# -- reminders: schedule.at ------------------------------------------------------------


async def test_schedule_reminder_runs_send_at_the_given_time(ref: KitcnClient) -> None:
    caller = create_caller(ref, reminders)
    send_at = now_ms() + 1500
    scheduled = await caller.schedule_reminder(message="stand up", send_at=send_at)

    job = await wait_state(ref, scheduled.job_id, timeout=30)
    assert (job.name, job.state.kind, job.scheduled_time) == ("reminders.send", "success", send_at)
    sent = await caller.get_reminder(reminder_id=scheduled.reminder_id)
    assert sent.sent_at is not None and sent.sent_at >= send_at


async def test_schedule_reminder_refuses_a_past_time_and_schedules_nothing(
    ref: KitcnClient, kitcn: KitcnClient
) -> None:
    message = f"too late {token()}"
    with pytest.raises(CRPCError) as caught:
        await create_caller(ref, reminders).schedule_reminder(message=message, send_at=now_ms() - 1000)
    assert caught.value.code == "BAD_REQUEST" and "future" in caught.value.message
    await settle_visibility(kitcn, token())
    rows = await ref.system.list(name="reminders.send", limit=1000)
    assert [r for r in rows if r.args.get("message") == message] == []


async def test_a_canceled_reminder_is_never_sent(ref: KitcnClient) -> None:
    caller = create_caller(ref, reminders)
    scheduled = await caller.schedule_reminder(message="in an hour", send_at=now_ms() + 3600_000)
    assert (await ref.system.get(scheduled.job_id)).state.kind == "pending"

    await caller.schedule.cancel(scheduled.job_id)

    assert (await wait_state(ref, scheduled.job_id)).state.kind == "canceled"
    assert (await caller.get_reminder(reminder_id=scheduled.reminder_id)).sent_at is None


async def test_send_of_a_deleted_reminder_does_nothing(ref: KitcnClient) -> None:
    assert await create_caller(ref, reminders).send(reminder_id="gone", message="hello") is False


# -- subscriptions: a stored job id, schedule.cancel -----------------------------------


async def test_create_subscription_schedules_its_expiration_thirty_days_out(user: KitcnClient) -> None:
    caller = create_caller(user, subscriptions)
    before = now_ms()
    subscription_id = await caller.create_subscription(plan_id="pro")
    after = now_ms()

    row = await caller.get_subscription(subscription_id=subscription_id)
    assert (row.plan_id, row.status, row.user_id) == ("pro", "active", user.auth["user_id"])
    job = await user.system.get(row.expiration_job_id)
    assert (job.name, job.state.kind) == ("subscriptions.expire", "pending")
    assert job.args == {"subscription_id": subscription_id, "user_id": user.auth["user_id"]}
    assert before + 30 * DAY_MS <= job.scheduled_time <= after + 30 * DAY_MS


async def test_cancel_subscription_cancels_the_expiration_and_deletes_the_row(user: KitcnClient) -> None:
    caller = create_caller(user, subscriptions)
    subscription_id = await caller.create_subscription(plan_id="team")
    job_id = (await caller.get_subscription(subscription_id=subscription_id)).expiration_job_id

    await caller.cancel_subscription(subscription_id=subscription_id)

    assert (await wait_state(user, job_id)).state.kind == "canceled"
    assert await caller.get_subscription(subscription_id=subscription_id) is None


async def test_cancel_subscription_of_a_missing_row_is_not_found(user: KitcnClient) -> None:
    with pytest.raises(CRPCError) as caught:
        await create_caller(user, subscriptions).cancel_subscription(subscription_id="no-such-subscription")
    assert caught.value.code == "NOT_FOUND"


async def test_cancel_subscription_of_another_user_is_not_found(ref: KitcnClient, user: KitcnClient) -> None:
    subscription_id = await create_caller(user, subscriptions).create_subscription(plan_id="pro")
    intruder = ref.with_auth({"user_id": "someone-else"})
    with pytest.raises(CRPCError) as caught:
        await create_caller(intruder, subscriptions).cancel_subscription(subscription_id=subscription_id)
    assert caught.value.code == "NOT_FOUND"
    assert await create_caller(user, subscriptions).get_subscription(subscription_id=subscription_id) is not None


async def test_subscriptions_need_a_signed_in_caller(ref: KitcnClient) -> None:
    with pytest.raises(CRPCError) as caught:
        await create_caller(ref, subscriptions).create_subscription(plan_id="pro")
    assert caught.value.code == "UNAUTHORIZED"


async def test_expire_marks_the_subscription_expired(user: KitcnClient) -> None:
    caller = create_caller(user, subscriptions)
    subscription_id = await caller.create_subscription(plan_id="pro")

    expired = await caller.expire(subscription_id=subscription_id, user_id=user.auth["user_id"])

    assert expired is True
    assert (await caller.get_subscription(subscription_id=subscription_id)).status == "expired"


async def test_expire_of_a_canceled_subscription_does_nothing(user: KitcnClient) -> None:
    caller = create_caller(user, subscriptions)
    assert await caller.expire(subscription_id="canceled-meanwhile", user_id=user.auth["user_id"]) is False


# -- sessions: the "cleanup stale data" cron -------------------------------------------


async def test_cleanup_stale_data_deletes_sessions_inactive_for_thirty_days(ref: KitcnClient) -> None:
    caller = create_caller(ref, sessions)
    tok = token()[:8]
    await caller.record_activity(session_id=f"{tok}-old", user_id="u", at=now_ms() - 31 * DAY_MS)
    await caller.record_activity(session_id=f"{tok}-older", user_id="u", at=now_ms() - 90 * DAY_MS)
    await caller.record_activity(session_id=f"{tok}-recent", user_id="u", at=now_ms() - 29 * DAY_MS)
    await caller.record_activity(session_id=f"{tok}-now", user_id="u")

    assert (await caller.cleanup_stale_data()).deleted_count == 2
    assert (await caller.cleanup_stale_data()).deleted_count == 0


# -- analytics and reports: the "daily report" cron ------------------------------------


async def test_get_daily_stats_counts_the_last_day(ref: KitcnClient) -> None:
    before = await create_caller(ref, analytics).actions.get_daily_stats()
    await create_caller(ref, orders).create_order(customer="linus", amount_cents=100)
    await create_caller(ref, items).create_item(name="counted")

    stats = await create_caller(ref, analytics).actions.get_daily_stats()

    assert stats.orders_created == before.orders_created + 1
    assert stats.items_created == before.items_created + 1
    assert stats.day == time.strftime("%Y-%m-%d", time.gmtime(stats.until / 1000))


async def test_generate_daily_report_stores_the_stats_as_a_report(ref: KitcnClient) -> None:
    out = await create_caller(ref, reports).actions.generate_daily_report()

    job = await wait_state(ref, out.report_job_id)
    assert (job.name, job.state.kind, job.args["type"]) == ("reports.create", "success", "daily")
    report_id = await ref.client.get_workflow_handle(out.report_job_id).result()
    report = await create_caller(ref, reports).get_report(report_id=report_id)
    assert (report.type, report.data) == ("daily", out.stats.model_dump())


# -- jobs: the _scheduled_functions table ----------------------------------------------


async def test_get_job_status_returns_the_jobs_row(ref: KitcnClient) -> None:
    scheduled = await create_caller(ref, reminders).schedule_reminder(message="later", send_at=now_ms() + 3600_000)

    row = await create_caller(ref, jobs).get_job_status(job_id=scheduled.job_id)

    assert (row.id, row.name, row.state.kind) == (scheduled.job_id, "reminders.send", "pending")
    assert row.model_dump(by_alias=True)["scheduledTime"] == row.scheduled_time
    await create_caller(ref, reminders).schedule.cancel(scheduled.job_id)


async def test_get_job_status_of_an_unknown_job_is_none(ref: KitcnClient) -> None:
    assert await create_caller(ref, jobs).get_job_status(job_id=str(uuid.uuid4())) is None


async def test_list_pending_jobs_lists_waiting_jobs(ref: KitcnClient) -> None:
    scheduled = await create_caller(ref, reminders).schedule_reminder(message="listed", send_at=now_ms() + 3600_000)

    async def listed() -> list[str]:
        rows = await create_caller(ref, jobs).list_pending_jobs(name="reminders.send")
        return [r.id for r in rows if r.id == scheduled.job_id]

    assert await wait_for(listed) == [scheduled.job_id]
    rows = await create_caller(ref, jobs).list_pending_jobs(name="reminders.send")
    assert all(r.state.kind == "pending" and r.name == "reminders.send" for r in rows)
    await create_caller(ref, reminders).schedule.cancel(scheduled.job_id)
