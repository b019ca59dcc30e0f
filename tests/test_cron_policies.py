"""docs/semantics.md §16: a cron's overlap policy and jitter (Temporal's schedule policies), and
backfilling a cron's runs of a past window."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from temporalio.client import Client, ScheduleDescription, ScheduleOverlapPolicy
from temporalio.service import RPCError

from helpers import describe_schedule as describe
from helpers import token, wait_state
from kitcn_temporal import App, CronJob, CronJobs, CRPCError, KitcnClient, create_caller, cron_jobs
from kitcn_temporal._wire import ExecOptions
from kitcn_temporal.crons._schedules import CronPlan
from testapp import cronjobs, runtimecrons
from testapp.probe import RUNS

POLICIES = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
ALLOWED = "overlap must be one of 'skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all'"


@pytest.fixture
async def names(client: Client) -> AsyncIterator[list[str]]:
    """Cron names whose schedules are deleted when the test ends."""
    made: list[str] = []
    yield made
    for name in made:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(f"kitcn-cron:{name}").delete()


def new_name(names: list[str], label: str) -> str:
    name = f"{label} {token()[:8]}"
    names.append(name)
    return name


async def must_describe(client: Client, name: str) -> ScheduleDescription:
    desc = await describe(client, f"kitcn-cron:{name}")
    assert desc is not None, f"no schedule for cron {name!r}"
    return desc


# Declarations: every shape takes overlap= and jitter=.

DECLARATIONS: dict[str, Callable[[CronJobs, dict[str, Any]], CronJob]] = {
    "interval": lambda c, kw: c.interval("c", {"hours": 1}, cronjobs.tick, {"token": "t"}, **kw),
    "cron": lambda c, kw: c.cron("c", "0 9 * * *", cronjobs.tick, {"token": "t"}, tz="Europe/Paris", **kw),
    "hourly": lambda c, kw: c.hourly("c", {"minute_utc": 5}, cronjobs.tick, {"token": "t"}, **kw),
    "daily": lambda c, kw: c.daily("c", {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"}, **kw),
    "weekly": lambda c, kw: c.weekly(
        "c", {"day_of_week": "monday", "hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"}, **kw
    ),
    "monthly": lambda c, kw: c.monthly(
        "c", {"day": 1, "hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"}, **kw
    ),
}


@pytest.mark.parametrize("shape", DECLARATIONS)
def test_every_declaration_takes_overlap_and_jitter(shape: str) -> None:
    job = DECLARATIONS[shape](cron_jobs(), {"overlap": "buffer_one", "jitter": timedelta(seconds=30)})
    assert (job.overlap, job.jitter) == ("buffer_one", timedelta(seconds=30))
    default = DECLARATIONS[shape](cron_jobs(), {})
    assert (default.overlap, default.jitter) == ("skip", timedelta(0))


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"overlap": "SKIP"}, ValueError, f"{ALLOWED}, not 'SKIP'"),
        ({"overlap": "queue"}, ValueError, f"{ALLOWED}, not 'queue'"),
        ({"overlap": ScheduleOverlapPolicy.SKIP}, ValueError, ALLOWED),
        ({"jitter": 30}, TypeError, "jitter is a timedelta such as timedelta(seconds=30), not 30"),
        ({"jitter": timedelta(seconds=-1)}, ValueError, "the jitter must be a whole number of milliseconds from 0"),
        ({"jitter": timedelta(microseconds=1500)}, ValueError, "whole number of milliseconds"),
        ({"jitter": timedelta(days=400)}, ValueError, "from 0 to 365 days, not 400 days"),
    ],
    ids=["upper case", "unknown", "temporal enum", "a number", "negative", "sub-millisecond", "over a year"],
)
@pytest.mark.parametrize("shape", ["interval", "daily"])
def test_a_bad_overlap_or_jitter_is_one_clear_error_naming_the_cron(
    shape: str, options: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    crons = cron_jobs()
    with pytest.raises(error) as caught:
        DECLARATIONS[shape](crons, options)
    assert str(caught.value).startswith("cron 'c': ") and fragment in str(caught.value)
    assert len(crons) == 0


# On the Temporal schedule, and kept in step by sync.


async def test_each_overlap_policy_and_the_jitter_are_on_the_temporal_schedule(
    client: Client, names: list[str]
) -> None:
    crons = cron_jobs()
    declared = {policy: new_name(names, policy) for policy in POLICIES}
    for policy, name in declared.items():
        crons.daily(name, {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"}, overlap=policy)  # type: ignore[arg-type]
    jittered = new_name(names, "jittered")
    crons.interval(jittered, {"minutes": 5}, cronjobs.tick, {"token": "t"}, jitter=timedelta(seconds=90))
    await crons.sync(client)

    for policy, name in declared.items():
        desc = await must_describe(client, name)
        assert (desc.schedule.policy.overlap, desc.schedule.spec.jitter) == (POLICIES[policy], None)
    desc = await must_describe(client, jittered)
    assert (desc.schedule.policy.overlap, desc.schedule.spec.jitter) == (
        ScheduleOverlapPolicy.SKIP,
        timedelta(seconds=90),
    )


async def test_a_change_of_overlap_or_jitter_is_a_change_sync_applies(client: Client, names: list[str]) -> None:
    name = new_name(names, "policy")

    def declared(**options: Any) -> CronJobs:
        crons = cron_jobs()
        crons.hourly(name, {"minute_utc": 10}, cronjobs.tick, {"token": "t"}, **options)
        return crons

    assert (await declared().sync(client)).created == [name]
    assert (await declared(overlap="buffer_all").sync(client)).updated == [name]
    assert (await must_describe(client, name)).schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ALL
    changed = declared(overlap="buffer_all", jitter=timedelta(seconds=20))
    assert (await changed.sync(client)).updated == [name]
    assert (await must_describe(client, name)).schedule.spec.jitter == timedelta(seconds=20)
    assert (await changed.sync(client)).unchanged == [name]
    assert (await declared().sync(client)).updated == [name]
    desc = await must_describe(client, name)
    assert (desc.schedule.policy.overlap, desc.schedule.spec.jitter) == (ScheduleOverlapPolicy.SKIP, None)


def _plan(origin: str, **policy: Any) -> CronPlan:
    options = ExecOptions("mutation", 60000)
    return CronPlan(
        "nightly", "cron", "0 3 * * *", "UTC", "reports.nightly", options, {"day": 1}, None, "kitcn", "kitcn", origin,
        **policy,
    )  # fmt: skip


def test_a_cron_declared_before_overlap_and_jitter_existed_keeps_its_hash() -> None:
    """A sync after an upgrade rewrites no existing schedule: the hashes of earlier versions hold."""
    assert _plan("declared").digest() == "53fb078036df725c2d62d46ad042cc40a34a9e37e3d373c78285709db8c25128"
    assert _plan("runtime").digest() == "70aca5050e7e63eb28933bc3e59bf20e85c516d87b43f901b7967f7e406c6837"
    assert _plan("declared", overlap="skip", jitter_ms=0).digest() == _plan("declared").digest()
    digests = {_plan("declared", overlap="buffer_one").digest(), _plan("declared", jitter_ms=1000).digest()}
    assert len(digests | {_plan("declared").digest()}) == 3


# crons list shows them.


async def test_list_rows_show_overlap_and_jitter(kitcn: KitcnClient, names: list[str]) -> None:
    crons = cron_jobs()
    name = new_name(names, "listed")
    crons.daily(name, {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"}, overlap="allow_all")
    unsynced = new_name(names, "unsynced")
    crons.interval(unsynced, {"hours": 1}, cronjobs.tick, {"token": "t"}, jitter=timedelta(milliseconds=2500))
    await crons.sync(kitcn)
    await kitcn.client.get_schedule_handle(f"kitcn-cron:{unsynced}").delete()

    rows = {row.name: row for row in await crons.list(kitcn)}

    assert (rows[name].overlap, rows[name].jitter, rows[name].up_to_date) == ("allow_all", timedelta(0), True)
    assert (rows[unsynced].overlap, rows[unsynced].jitter) == ("skip", timedelta(milliseconds=2500))


# Runtime crons: in the register spec.


async def test_a_runtime_cron_takes_overlap_and_jitter_in_its_spec(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "runtime")
    spec = {"cron": "0 4 * * *", "tz": "UTC", "overlap": "cancel_other", "jitter_ms": 1500}
    await kitcn.crons.register(name, spec, cronjobs.tick, {"token": "t"})

    desc = await must_describe(client, name)
    assert (desc.schedule.policy.overlap, desc.schedule.spec.jitter) == (
        ScheduleOverlapPolicy.CANCEL_OTHER,
        timedelta(milliseconds=1500),
    )
    row = await kitcn.crons.get(name)
    assert row is not None and (row.spec, row.overlap, row.jitter) == (
        spec,
        "cancel_other",
        timedelta(milliseconds=1500),
    )
    again = {"interval_ms": 60_000, "jitter": timedelta(seconds=3)}
    await kitcn.crons.register(name, again, cronjobs.tick, {"token": "t"})
    row = await kitcn.crons.get(name)
    assert row is not None and (row.spec, row.overlap) == ({"interval_ms": 60_000, "jitter_ms": 3000}, "skip")


async def test_a_mutations_runtime_cron_keeps_its_policies_through_the_commit(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "committed")
    spec = {"interval_ms": 3_600_000, "overlap": "buffer_one", "jitter_ms": 250}
    await kitcn.call(runtimecrons.register, {"name": name, "spec": spec, "token": "t"})
    desc = await must_describe(client, name)
    assert (desc.schedule.policy.overlap, desc.schedule.spec.jitter) == (
        ScheduleOverlapPolicy.BUFFER_ONE,
        timedelta(milliseconds=250),
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"interval_ms": 60_000, "overlap": "queue"}, f"{ALLOWED}, not 'queue'"),
        ({"interval_ms": 60_000, "jitter_ms": -5}, "the jitter must be a whole number of milliseconds"),
        ({"interval_ms": 60_000, "jitter_ms": 0.5}, "whole number of milliseconds"),
        ({"interval_ms": 60_000, "jitter_ms": "5"}, "jitter_ms must be a finite number of milliseconds, not '5'"),
        ({"interval_ms": 60_000, "jitter": 5}, "jitter is a timedelta"),
        ({"interval_ms": 60_000, "jitter": timedelta(seconds=1), "jitter_ms": 1000}, "a spec is"),
        ({"overlap": "skip"}, "a spec is"),
    ],
    ids=["unknown overlap", "negative", "sub-millisecond", "a string", "jitter a number", "both jitters", "no timing"],
)
async def test_a_bad_runtime_overlap_or_jitter_is_one_clear_error(
    kitcn: KitcnClient, client: Client, names: list[str], spec: dict[str, Any], fragment: str
) -> None:
    name = new_name(names, "bad")
    with pytest.raises(CRPCError) as err:
        await kitcn.crons.register(name, spec, cronjobs.tick, {"token": "t"})
    assert err.value.code == "BAD_REQUEST"
    assert err.value.message.startswith(f"cron {name!r}: ") and fragment in err.value.message
    assert await describe(client, f"kitcn-cron:{name}") is None


# Backfill: each time of a window, once, now.

HOUR = timedelta(hours=1)


def past_day_at(hour: int) -> datetime:
    """``hour`` o'clock (UTC) two days ago."""
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    return day + timedelta(hours=hour)


async def paused_hourly(client: Client, app: App, names: list[str], label: str) -> str:
    """A synced hourly cron (at minute 0), paused so that only the backfill runs it."""
    name = new_name(names, label)
    crons = cron_jobs()
    crons.hourly(name, {"minute_utc": 0}, cronjobs.tick, {"token": name})
    await crons.sync(client, app)
    await client.get_schedule_handle(f"kitcn-cron:{name}").pause(note="only backfills run it")
    return name


async def test_a_backfilled_hourly_cron_runs_once_per_hour_of_the_window_due_at_that_hour(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    name = await paused_hourly(client, app, names, "backfilled")
    start = past_day_at(10)

    assert await kitcn.crons.backfill(name, start, start + 3 * HOUR) == 3

    for hour in range(3):
        due = start + hour * HOUR
        job = await wait_state(kitcn, f"cronjobs.tick:cron:{name}-{due:%Y-%m-%dT%H:%M:%SZ}")
        assert (job.state.kind, job.scheduled_time, job.name) == (
            "success",
            int(due.timestamp() * 1000),
            "cronjobs.tick",
        )
    assert await kitcn.system.get(f"cronjobs.tick:cron:{name}-{start + 3 * HOUR:%Y-%m-%dT%H:%M:%SZ}") is None
    assert len([run for run in RUNS[name] if run[0] == "tick"]) == 3


async def test_a_runtime_cron_is_backfilled_from_an_action(kitcn: KitcnClient, names: list[str]) -> None:
    name = new_name(names, "runtime backfill")
    await kitcn.crons.register(name, {"interval_ms": 1_800_000}, cronjobs.tick, {"token": name})
    start = past_day_at(10)
    window = {"name": name, "start": start, "end": start + HOUR}
    assert await create_caller(kitcn, runtimecrons).actions.backfill(**window) == 2
    for due in (start, start + HOUR / 2):
        job = await wait_state(kitcn, f"cronjobs.tick:cron:{name}-{due:%Y-%m-%dT%H:%M:%SZ}")
        assert job.scheduled_time == int(due.timestamp() * 1000)


async def test_a_window_without_a_run_starts_nothing(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    name = await paused_hourly(client, app, names, "empty window")
    start = past_day_at(10) + timedelta(minutes=1)
    assert await kitcn.crons.backfill(name, start, start + timedelta(minutes=30)) == 0


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 13, tzinfo=timezone.utc), "start must be timezone-aware"),
        (datetime(2026, 1, 1, 10, tzinfo=timezone.utc), datetime(2026, 1, 1, 13), "end must be timezone-aware"),
        (
            datetime(2026, 1, 1, 13, tzinfo=timezone.utc),
            datetime(2026, 1, 1, 10, tzinfo=timezone.utc),
            "must come after start",
        ),
        (
            datetime(2026, 1, 1, 13, tzinfo=timezone.utc),
            datetime(2026, 1, 1, 13, tzinfo=timezone.utc),
            "must come after start",
        ),
        ("2026-01-01T10:00:00Z", datetime(2026, 1, 1, 13, tzinfo=timezone.utc), "start must be a datetime"),
        (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc), "more than 500 runs"),
    ],
    ids=["naive start", "naive end", "end before start", "empty", "not a datetime", "too many runs"],
)
async def test_a_bad_backfill_window_is_a_bad_request(
    kitcn: KitcnClient, client: Client, app: App, names: list[str], start: Any, end: Any, fragment: str
) -> None:
    name = await paused_hourly(client, app, names, "bad window")
    with pytest.raises(CRPCError) as err:
        await kitcn.crons.backfill(name, start, end)
    assert err.value.code == "BAD_REQUEST" and name in err.value.message and fragment in err.value.message


async def test_backfill_of_a_cron_the_app_does_not_have_is_not_found(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    start = past_day_at(10)
    with pytest.raises(CRPCError) as err:
        await kitcn.crons.backfill("no such cron", start, start + HOUR)
    assert err.value.code == "NOT_FOUND" and "no cron 'no such cron'" in err.value.message
    other = KitcnClient(client, app.with_options(task_queue=f"other-{token()[:6]}"))
    name = new_name(names, "other app's")
    await other.crons.register(name, {"interval_ms": 3_600_000}, cronjobs.tick, {"token": "t"})
    with pytest.raises(CRPCError) as err:
        await kitcn.crons.backfill(name, start, start + HOUR)
    assert err.value.code == "NOT_FOUND" and "belongs to app" in err.value.message


async def test_a_mutation_cannot_backfill(kitcn: KitcnClient, client: Client, app: App, names: list[str]) -> None:
    name = await paused_hourly(client, app, names, "from a mutation")
    start = past_day_at(10)
    with pytest.raises(CRPCError, match="a backfill takes effect at once") as err:
        await create_caller(kitcn, runtimecrons).backfill_from_mutation(name=name, start=start, end=start + HOUR)
    assert err.value.code == "BAD_REQUEST"
