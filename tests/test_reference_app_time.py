"""The reference app where time matters, on virtual time (kitcn_temporal.testing, semantics §11).

The 30-day subscription expiry, the charge 5 s after ``process_order`` and the two crons of
``workflows/crons.py`` run on the plugin's ``kitcn_env``: a namespace and a SQLite file per
test, time skipped by Temporal, seconds of wall time.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import activities
from activities import orders, reports, sessions, subscriptions
from conftest import HEARTBEAT
from helpers import token
from kitcn_temporal import App, KitcnClient, ScheduledFunction, create_caller
from kitcn_temporal.testing import TestEnv
from testapp.probe import wait_for
from workflows.crons import crons

DAY = timedelta(days=1)
#: The tests that need the app's crons take them through the plugin's kitcn_crons fixture.
with_crons = pytest.mark.parametrize("kitcn_crons", [crons], ids=["crons"])


@pytest.fixture
def kitcn_app() -> App:
    return activities.create_app(action_heartbeat_timeout=HEARTBEAT)


@pytest.fixture
def user(kitcn_env: TestEnv) -> KitcnClient:
    return kitcn_env.kitcn.with_auth({"user_id": f"user-{token()[:8]}"})


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


async def listed(env: TestEnv, name: str, count: int) -> list[ScheduledFunction]:
    """The jobs of ``name`` once the status table lists ``count`` of them (visibility lags)."""

    async def rows() -> list[ScheduledFunction] | None:
        found = await env.kitcn.system.list(name=name)
        return found if len(found) >= count else None

    result: list[ScheduledFunction] = await wait_for(rows)
    return result


# -- subscriptions: expiry 30 days later ----------------------------------------------------


async def test_a_subscription_expires_thirty_days_later_in_seconds(kitcn_env: TestEnv, user: KitcnClient) -> None:
    started = time.monotonic()
    caller = create_caller(user, subscriptions)
    subscription_id = await caller.create_subscription(plan_id="pro")
    job_id = (await caller.get_subscription(subscription_id=subscription_id)).expiration_job_id

    await kitcn_env.advance(timedelta(days=29))
    assert (await caller.get_subscription(subscription_id=subscription_id)).status == "active"
    assert (await kitcn_env.kitcn.system.get(job_id)).state.kind == "pending"

    await kitcn_env.advance(DAY)
    assert (await caller.get_subscription(subscription_id=subscription_id)).status == "expired"
    job = await kitcn_env.kitcn.system.get(job_id)
    assert (job.name, job.state.kind) == ("subscriptions.expire", "success")
    assert time.monotonic() - started < 15


async def test_a_canceled_subscription_never_expires(kitcn_env: TestEnv, user: KitcnClient) -> None:
    caller = create_caller(user, subscriptions)
    subscription_id = await caller.create_subscription(plan_id="team")
    job_id = (await caller.get_subscription(subscription_id=subscription_id)).expiration_job_id
    await caller.cancel_subscription(subscription_id=subscription_id)

    await kitcn_env.advance(timedelta(days=31))

    assert (await kitcn_env.kitcn.system.get(job_id)).state.kind == "canceled"
    assert await caller.get_subscription(subscription_id=subscription_id) is None


# -- orders: the charge 5 s after process_order ---------------------------------------------


async def test_process_order_charges_the_order_five_seconds_later(kitcn_env: TestEnv) -> None:
    caller = create_caller(kitcn_env.kitcn, orders)
    order_id = await caller.create_order(customer="ada", amount_cents=1250)
    job_id = await caller.process_order(order_id=order_id)

    await kitcn_env.advance(timedelta(seconds=4))
    assert (await caller.get_order(order_id=order_id)).status == "processing"
    assert (await kitcn_env.kitcn.system.get(job_id)).state.kind == "pending"

    await kitcn_env.advance(timedelta(seconds=1))
    assert (await caller.get_order(order_id=order_id)).status == "paid"
    assert (await kitcn_env.kitcn.system.get(job_id)).state.kind == "success"


# -- crons: cleanup every 2 hours, the daily report at 09:00 UTC -----------------------------


@with_crons
async def test_the_cleanup_cron_runs_every_two_hours(kitcn_env: TestEnv) -> None:
    start = kitcn_env.now()
    await kitcn_env.advance(DAY)

    runs = await listed(kitcn_env, "sessions.cleanup_stale_data", 12)
    assert len(runs) == 12 and {run.state.kind for run in runs} == {"success"}
    times = sorted(utc(run.scheduled_time) for run in runs)
    assert all(t.hour % 2 == 0 and (t.minute, t.second) == (0, 0) for t in times)
    assert start < times[0] and times[-1] <= kitcn_env.now()
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(hours=2)] * 11


@with_crons
async def test_the_cleanup_cron_deletes_what_virtual_time_made_stale(kitcn_env: TestEnv) -> None:
    caller = create_caller(kitcn_env.kitcn, sessions)
    day_ms = int(DAY.total_seconds() * 1000)
    now_ms = int(time.time() * 1000)
    await caller.record_activity(session_id="nearly-stale", user_id="u", at=now_ms - 29 * day_ms - day_ms // 2)
    await caller.record_activity(session_id="fresh", user_id="u", at=now_ms)

    await kitcn_env.advance(DAY)

    runs = await listed(kitcn_env, "sessions.cleanup_stale_data", 12)
    results: list[Any] = [await kitcn_env.client.get_workflow_handle(run.id).result() for run in runs]
    # The session 29.5 days old went in the run 12 hours on; the fresh one stays.
    assert sum(result["deleted_count"] for result in results) == 1


@with_crons
async def test_the_daily_report_runs_at_nine_utc(kitcn_env: TestEnv) -> None:
    now = kitcn_env.now()
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    nine = nine if nine > now else nine + DAY

    await kitcn_env.advance(nine - now + timedelta(minutes=1))

    run = await kitcn_env.kitcn.system.get(f"reports.generate_daily_report:cron:daily report-{nine:%Y-%m-%dT%H:%M:%SZ}")
    assert run is not None and (run.state.kind, utc(run.scheduled_time)) == ("success", nine)
    out = await kitcn_env.client.get_workflow_handle(run.id).result()
    report_job = await kitcn_env.kitcn.system.get(out["report_job_id"])
    assert (report_job.name, report_job.state.kind) == ("reports.create", "success")
    report_id = await kitcn_env.client.get_workflow_handle(report_job.id).result()
    report = await create_caller(kitcn_env.kitcn, reports).get_report(report_id=report_id)
    assert (report.type, report.data) == ("daily", out["stats"])


@with_crons
async def test_trigger_cron_runs_the_daily_report_now(kitcn_env: TestEnv) -> None:
    job_id = await kitcn_env.trigger_cron("daily report")
    await kitcn_env.wait_idle()

    run = await kitcn_env.kitcn.system.get(job_id)
    assert (run.name, run.state.kind) == ("reports.generate_daily_report", "success")
    out = await kitcn_env.client.get_workflow_handle(job_id).result()
    assert (await kitcn_env.kitcn.system.get(out["report_job_id"])).state.kind == "success"
