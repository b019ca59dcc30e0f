"""docs/semantics.md §6: crons are declared in code, checked when declared, and kept in Temporal as schedules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, ScheduleDescription, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from helpers import describe_schedule as describe
from helpers import token
from kitcn_temporal import JOB_WORKFLOW, App, CronJobs, KitcnClient, cron_jobs, private_mutation
from kitcn_temporal._wire import SA_FUNCTION, SA_STATE
from kitcn_temporal.crons._schedules import CATCHUP_WINDOW
from testapp import cronjobs
from testapp.probe import RUNS, wait_for

PARIS = ZoneInfo("Europe/Paris")


@private_mutation.mutation
async def outside_the_app(ctx) -> None:
    """Declared here, so not part of the test app."""


@pytest.fixture
async def declare(client: Client) -> AsyncIterator[Callable[[], CronJobs]]:
    """Makes cron sets; deletes every schedule they declare when the test ends."""
    made: list[CronJobs] = []

    def new() -> CronJobs:
        crons = cron_jobs()
        made.append(crons)
        return crons

    yield new
    for crons in made:
        for job in crons:
            try:
                await client.get_schedule_handle(job.schedule_id).delete()
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise


async def must_describe(client: Client, schedule_id: str) -> ScheduleDescription:
    desc = await describe(client, schedule_id)
    assert desc is not None, f"no schedule {schedule_id}"
    return desc


async def action_args(client: Client, desc: ScheduleDescription) -> Any:
    memo: Any = desc.schedule.action.memo  # type: ignore[attr-defined]
    return (await client.data_converter.decode([memo["args"]]))[0]


def paris_half_past_nine(after: datetime, count: int) -> list[datetime]:
    """The next ``count`` 09:30 wall-clock times in Paris after ``after``, in UTC."""
    day = after.astimezone(PARIS).date() - timedelta(days=1)
    times: list[datetime] = []
    while len(times) < count:
        moment = datetime.combine(day, time(9, 30), tzinfo=PARIS).astimezone(timezone.utc)
        if moment > after:
            times.append(moment)
        day += timedelta(days=1)
    return times


# Declarations: checked at once, each error naming the cron.


def test_interval_takes_one_unit_or_a_timedelta() -> None:
    crons = cron_jobs()
    hours = crons.interval("every two hours", {"hours": 2}, cronjobs.tick, {"token": "t"})
    seconds = crons.interval("ninety seconds", {"seconds": 90}, cronjobs.tick, {"token": "t"})
    delta = crons.interval("five minutes", timedelta(minutes=5), cronjobs.tick, {"token": "t"})
    fraction = crons.interval("ninety minutes", {"hours": 1.5}, cronjobs.tick, {"token": "t"})
    assert (hours.every, hours.spec) == (timedelta(hours=2), "every 2h")
    assert (seconds.every, seconds.spec) == (timedelta(seconds=90), "every 90s")
    assert (delta.every, delta.spec) == (timedelta(minutes=5), "every 5m")
    assert (fraction.every, fraction.spec) == (timedelta(minutes=90), "every 90m")


def test_convex_shapes_become_utc_cron_expressions() -> None:
    crons = cron_jobs()
    args = {"token": "t"}
    assert crons.hourly("h", {"minute_utc": 5}, cronjobs.tick, args).spec == "5 * * * *"
    assert crons.daily("d", {"hour_utc": 17, "minute_utc": 30}, cronjobs.tick, args).spec == "30 17 * * *"
    weekly = {"day_of_week": "monday", "hour_utc": 9, "minute_utc": 0}
    assert crons.weekly("w", weekly, cronjobs.tick, args).spec == "0 9 * * 1"
    monthly = {"day": 15, "hour_utc": 6, "minute_utc": 45}
    assert crons.monthly("m", monthly, cronjobs.tick, args).spec == "45 6 15 * *"
    assert {job.timezone for job in crons} == {"UTC"}


@pytest.mark.parametrize(
    ("method", "at"),
    [
        ("hourly", {"minute": 5}),
        ("hourly", {"minute_utc": 60}),
        ("daily", {"hour_utc": 24, "minute_utc": 0}),
        ("daily", {"hour_utc": True, "minute_utc": 0}),
        ("weekly", {"day_of_week": "Mon", "hour_utc": 9, "minute_utc": 0}),
        ("monthly", {"day": 0, "hour_utc": 9, "minute_utc": 0}),
        ("monthly", {"hour_utc": 9, "minute_utc": 0}),
    ],
)
def test_malformed_convex_shape_is_refused(method: str, at: dict[str, Any]) -> None:
    crons = cron_jobs()
    with pytest.raises(ValueError, match=rf"cron 'report': .*{method}\(\)|cron 'report': \w+ must be"):
        getattr(crons, method)("report", at, cronjobs.tick, {"token": "t"})
    assert "report" not in crons


@pytest.mark.parametrize(
    "expression",
    [
        "61 * * * *",
        "0 9 * *",
        "0 0 9 * * *",
        "0 9 L * *",
        "0 9 * * 1#2",
        "every day",
        "0 9 31 2 *",
    ],
)
def test_invalid_cron_expression_is_refused(expression: str) -> None:
    crons = cron_jobs()
    with pytest.raises(ValueError, match=r"cron 'nightly': invalid cron expression"):
        crons.cron("nightly", expression, cronjobs.tick, {"token": "t"})
    assert "nightly" not in crons


def test_duplicate_cron_name_is_refused() -> None:
    crons = cron_jobs()
    crons.daily("digest", {"hour_utc": 9, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    with pytest.raises(ValueError, match=r"cron 'digest' is declared twice"):
        crons.interval("digest", {"hours": 1}, cronjobs.tick, {"token": "t"})
    assert crons["digest"].spec == "0 9 * * *"


@pytest.mark.parametrize("every", [{"seconds": 0}, {"minutes": -1}, timedelta(0), timedelta(seconds=-5)])
def test_interval_must_be_positive(every: Any) -> None:
    with pytest.raises(ValueError, match=r"cron 'pulse': the interval must be positive"):
        cron_jobs().interval("pulse", every, cronjobs.tick, {"token": "t"})


@pytest.mark.parametrize(
    "every",
    [
        {"seconds": 0.5},
        {"seconds": 1.5},
        {"hours": 1e12},
        {"hours": 1, "minutes": 30},
        {"days": 1},
        {"seconds": "5"},
        {"seconds": float("nan")},
    ],
)
def test_malformed_interval_is_refused(every: Any) -> None:
    with pytest.raises(ValueError, match=r"cron 'pulse': "):
        cron_jobs().interval("pulse", every, cronjobs.tick, {"token": "t"})


def test_query_target_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cron 'peek': .*peek is a query, and queries cannot be scheduled"):
        cron_jobs().interval("peek", {"hours": 1}, cronjobs.peek)


def test_target_must_be_a_procedure() -> None:
    with pytest.raises(TypeError, match=r"cron 'plain': the target must be a mutation or an action"):
        cron_jobs().interval("plain", {"hours": 1}, print)  # type: ignore[arg-type]


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cron 'paris': unknown time zone 'Europe/Pariss'"):
        cron_jobs().cron("paris", "30 9 * * *", cronjobs.tick, {"token": "t"}, tz="Europe/Pariss")


@pytest.mark.parametrize("name", ["line\nbreak", "tab\there", "", "   ", "x" * 201])
def test_unprintable_or_empty_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"invalid cron name"):
        cron_jobs().interval(name, {"hours": 1}, cronjobs.tick, {"token": "t"})


def test_arguments_are_validated_against_the_input_model() -> None:
    crons = cron_jobs()
    with pytest.raises(ValueError, match=r"cron 'tick': invalid arguments for .*token: Field required"):
        crons.interval("tick", {"hours": 1}, cronjobs.tick, {"note": "no token"})
    with pytest.raises(ValueError, match=r"cron 'beat': .*takes no arguments"):
        crons.interval("beat", {"hours": 1}, cronjobs.beat, {"unexpected": 1})
    assert len(crons) == 0


# Sync: Temporal's schedules follow the declarations.


async def test_schedule_starts_the_job_workflow_skipping_overlaps(client: Client, app: App, declare: Any) -> None:
    name = f"shape {token()[:8]}"
    crons = declare()
    crons.daily(name, {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    await crons.sync(client, app)
    desc = await must_describe(client, f"kitcn-cron:{name}")
    action: Any = desc.schedule.action
    assert (action.workflow, action.task_queue) == (JOB_WORKFLOW, app.task_queue)
    assert action.typed_search_attributes.get(SA_FUNCTION) == "cronjobs.tick"
    assert action.typed_search_attributes.get(SA_STATE) == "pending"
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert desc.schedule.policy.catchup_window == CATCHUP_WINDOW


async def test_interval_cron_runs_are_successful_jobs(kitcn: KitcnClient, declare: Any) -> None:
    tok = token()
    name = f"pulse {tok[:8]}"
    crons = declare()
    crons.interval(name, {"seconds": 2}, cronjobs.tick, {"token": tok})
    await crons.sync(kitcn)

    async def two_successful_runs() -> list[Any] | None:
        rows = await kitcn.system.list(name="cronjobs.tick", limit=500)
        done = [r for r in rows if r.args.get("token") == tok and r.state.kind == "success"]
        return done if len(done) >= 2 else None

    runs = await wait_for(two_successful_runs, timeout=30)
    assert all(run.id.startswith(f"cronjobs.tick:cron:{name}-") for run in runs)  # the function first
    assert {run.id for run in runs} <= {job.id for _, job, _ in RUNS[tok]}


async def test_second_sync_writes_nothing(client: Client, declare: Any) -> None:
    tok = token()
    names = [f"{kind} {tok[:8]}" for kind in ("daily", "interval", "paris")]
    crons = declare()
    crons.daily(names[0], {"hour_utc": 5, "minute_utc": 0}, cronjobs.tick, {"token": tok})
    crons.interval(names[1], {"hours": 2}, cronjobs.tick, {"token": tok})
    crons.cron(names[2], "0 9 1 * 1", cronjobs.tick, {"token": tok}, tz="Europe/Paris")
    first = await crons.sync(client)
    assert sorted(first.created) == sorted(names)
    before = [(await must_describe(client, job.schedule_id)).raw_description.conflict_token for job in crons]

    second = await crons.sync(client)

    assert (second.writes, sorted(second.unchanged)) == (0, sorted(names))
    after = [(await must_describe(client, job.schedule_id)).raw_description.conflict_token for job in crons]
    assert after == before


async def test_changing_the_arguments_updates_the_schedule(client: Client, declare: Any) -> None:
    tok = token()
    name = f"args {tok[:8]}"
    original = declare()
    original.daily(name, {"hour_utc": 6, "minute_utc": 0}, cronjobs.tick, {"token": tok, "note": "v1"})
    await original.sync(client)
    changed = declare()
    changed.daily(name, {"hour_utc": 6, "minute_utc": 0}, cronjobs.tick, {"token": tok, "note": "v2"})

    report = await changed.sync(client)

    assert report.updated == [name]
    desc = await must_describe(client, f"kitcn-cron:{name}")
    assert await action_args(client, desc) == {"token": tok, "note": "v2"}


async def test_removed_declaration_deletes_its_schedule(client: Client, declare: Any) -> None:
    tok = token()
    kept, dropped = f"kept {tok[:8]}", f"dropped {tok[:8]}"
    both = declare()
    both.daily(kept, {"hour_utc": 7, "minute_utc": 0}, cronjobs.tick, {"token": tok})
    both.daily(dropped, {"hour_utc": 7, "minute_utc": 0}, cronjobs.tick, {"token": tok})
    await both.sync(client)
    # Stale schedules are found through Temporal's list, which lags creation.
    await wait_for(lambda: _listed(client, f"kitcn-cron:{dropped}"))
    only_kept = declare()
    only_kept.daily(kept, {"hour_utc": 7, "minute_utc": 0}, cronjobs.tick, {"token": tok})

    report = await only_kept.sync(client)

    assert dropped in report.deleted
    assert report.unchanged == [kept]
    assert await describe(client, f"kitcn-cron:{dropped}") is None


async def test_paused_schedule_stays_paused_after_sync(client: Client, declare: Any) -> None:
    tok = token()
    name = f"paused {tok[:8]}"
    original = declare()
    original.daily(name, {"hour_utc": 8, "minute_utc": 0}, cronjobs.tick, {"token": tok, "note": "v1"})
    await original.sync(client)
    await client.get_schedule_handle(f"kitcn-cron:{name}").pause(note="held for maintenance")
    changed = declare()
    changed.daily(name, {"hour_utc": 8, "minute_utc": 15}, cronjobs.tick, {"token": tok, "note": "v2"})

    report = await changed.sync(client)

    assert report.updated == [name]
    state = (await must_describe(client, f"kitcn-cron:{name}")).schedule.state
    assert (state.paused, state.note) == (True, "held for maintenance")


async def test_paris_cron_runs_at_half_past_nine_paris_time(client: Client, declare: Any) -> None:
    name = f"paris {token()[:8]}"
    crons = declare()
    job = crons.cron(name, "30 9 * * *", cronjobs.tick, {"token": "t"}, tz="Europe/Paris")
    now = datetime.now(timezone.utc)
    expected = paris_half_past_nine(now, 3)
    assert job.next_runs(3, after=now) == expected

    await crons.sync(client)

    desc = await must_describe(client, job.schedule_id)
    assert list(desc.info.next_action_times[:3]) == expected


async def test_either_day_matches_when_both_days_are_restricted(client: Client, declare: Any) -> None:
    crons = declare()
    # Cron's rule: the 13th of a month, and every Friday.
    job = crons.cron(f"days {token()[:8]}", "0 12 13 * 5", cronjobs.tick, {"token": "t"})
    now = datetime.now(timezone.utc)

    await crons.sync(client)

    desc = await must_describe(client, job.schedule_id)
    temporal = list(desc.info.next_action_times)
    assert temporal == job.next_runs(len(temporal), after=now)
    assert {t.day for t in temporal if t.weekday() != 4} == {13}


async def test_sync_resolves_every_target_before_writing(client: Client, declare: Any) -> None:
    name = f"fine {token()[:8]}"
    crons = declare()
    crons.daily(name, {"hour_utc": 9, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    crons.daily("foreign", {"hour_utc": 9, "minute_utc": 0}, outside_the_app)

    with pytest.raises(ValueError, match=r"cron 'foreign': .*not part of this app"):
        await crons.sync(client)

    assert await describe(client, f"kitcn-cron:{name}") is None


async def test_sync_needs_an_app_for_a_client_without_the_plugin(client: Client) -> None:
    bare = Client(client.service_client, namespace=client.namespace)
    with pytest.raises(TypeError, match=r"not connected with KitcnPlugin"):
        await cron_jobs().sync(bare)


# crons list: what the CLI shows.


async def test_list_previews_a_cron_not_synced_yet(kitcn: KitcnClient, declare: Any) -> None:
    name = f"preview {token()[:8]}"
    crons = declare()
    crons.interval(name, {"hours": 3}, cronjobs.tick, {"token": "t"})

    (row,) = [r for r in await crons.list(kitcn) if r.name == name]

    assert (row.synced, row.up_to_date, row.spec, row.function) == (False, False, "every 3h", "cronjobs.tick")
    assert len(row.next_runs) == 3
    assert all(t.timestamp() % (3 * 3600) == 0 for t in row.next_runs)
    assert row.next_runs[0] > datetime.now(timezone.utc) - timedelta(seconds=1)


async def test_list_shows_the_last_run_state(kitcn: KitcnClient, declare: Any) -> None:
    tok = token()
    name = f"listed {tok[:8]}"
    crons = declare()
    crons.daily(name, {"hour_utc": 3, "minute_utc": 0}, cronjobs.tick, {"token": tok})
    await crons.sync(kitcn)
    await kitcn.client.get_schedule_handle(f"kitcn-cron:{name}").trigger()

    async def finished_row() -> Any:
        (row,) = [r for r in await crons.list(kitcn) if r.name == name]
        return row if row.last_run is not None and row.last_run.state.kind == "success" else None

    row = await wait_for(finished_row, timeout=30)
    assert (row.synced, row.up_to_date, row.paused, row.timezone) == (True, True, False, "UTC")
    assert [(t.hour, t.minute) for t in row.next_runs] == [(3, 0)] * 3
    assert row.last_run.args == {"token": tok, "note": ""}


async def test_list_shows_a_schedule_no_longer_declared(client: Client, declare: Any) -> None:
    name = f"stale {token()[:8]}"
    old = declare()
    old.cron(name, "15 10 * * *", cronjobs.tick, {"token": "t"}, tz="Europe/Paris")
    await old.sync(client)
    await wait_for(lambda: _listed(client, f"kitcn-cron:{name}"))

    (row,) = [r for r in await declare().list(client) if r.name == name]

    assert (row.declared, row.synced, row.function) == (False, True, "cronjobs.tick")
    assert (row.spec, row.timezone, row.args) == ("15 10 * * *", "Europe/Paris", {"token": "t", "note": ""})


async def _listed(client: Client, schedule_id: str) -> bool:
    return any([entry.id == schedule_id async for entry in await client.list_schedules()])
