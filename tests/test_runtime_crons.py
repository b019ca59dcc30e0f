"""docs/semantics.md §12: runtime crons, registered and unregistered by code while the app runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError

from helpers import describe_schedule as describe
from helpers import token
from kitcn_temporal import JOB_WORKFLOW, App, CronConflictError, CRPCError, KitcnClient, cron_jobs, private_mutation
from kitcn_temporal._wire import SA_FUNCTION
from kitcn_temporal.crons._owner import MEMO_CRON
from kitcn_temporal.crons._schedules import CATCHUP_WINDOW
from testapp import cronjobs, runtimecrons
from testapp.probe import RUNS, wait_for

PARIS = ZoneInfo("Europe/Paris")
EVERY_2S = {"interval_ms": 2000}
DAILY = {"cron": "0 4 * * *"}


@private_mutation.mutation
async def outside_the_app(ctx) -> None:
    """Declared here, so not part of the test app."""


@pytest.fixture
async def names(client: Client) -> AsyncIterator[list[str]]:
    """Cron names to delete (their schedules) when the test ends."""
    made: list[str] = []
    yield made
    for name in made:
        with contextlib.suppress(RPCError):  # never created, or unregistered by the test
            await client.get_schedule_handle(f"kitcn-cron:{name}").delete()


def new_name(names: list[str], label: str) -> str:
    name = f"{label} {token()[:8]}"
    names.append(name)
    return name


async def successful_ticks(kitcn: KitcnClient, tok: str, at_least: int) -> list[Any] | None:
    rows = await kitcn.system.list(name="cronjobs.tick", limit=500)
    done = [r for r in rows if r.args.get("token") == tok and r.state.kind == "success"]
    return done if len(done) >= at_least else None


async def listed(client: Client, schedule_id: str) -> bool:
    return any([entry.id == schedule_id async for entry in await client.list_schedules()])


# From a mutation: atomic with it.


async def test_a_cron_registered_by_a_mutation_that_then_raises_does_not_exist(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "failed")
    with pytest.raises(CRPCError, match="refused after registering"):
        await kitcn.call(runtimecrons.register_then_fail, {"name": name, "spec": EVERY_2S, "token": token()})
    assert await describe(client, f"kitcn-cron:{name}") is None
    assert await kitcn.crons.get(name) is None


async def test_a_committed_mutations_cron_fires_every_2_seconds_and_survives_a_crons_sync(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    tok, name = token(), new_name(names, "pulse")
    await kitcn.call(runtimecrons.register, {"name": name, "spec": EVERY_2S, "token": tok})
    runs = await wait_for(lambda: successful_ticks(kitcn, tok, 2), timeout=30)
    assert all(run.id.startswith(f"cronjobs.tick:cron:{name}-") for run in runs)  # the function first
    # The sync's deletion pass reads Temporal's schedule list: let it see the runtime cron.
    await wait_for(lambda: listed(client, f"kitcn-cron:{name}"))
    before = await describe(client, f"kitcn-cron:{name}")
    declared = cron_jobs()
    declared.daily(f"declared {token()[:8]}", {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": tok})
    names.extend(job.name for job in declared)

    report = await declared.sync(kitcn)

    assert name not in report.deleted + report.updated + report.unchanged
    after = await describe(client, f"kitcn-cron:{name}")
    assert before is not None and after is not None
    assert after.raw_description.conflict_token == before.raw_description.conflict_token
    await wait_for(lambda: successful_ticks(kitcn, tok, len(runs) + 1), timeout=30)


async def test_a_runtime_cron_is_the_same_schedule_shape_as_a_declared_one(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    name = new_name(names, "shape")
    await kitcn.call(runtimecrons.register, {"name": name, "spec": DAILY, "token": "t"})
    desc = await describe(client, f"kitcn-cron:{name}")
    assert desc is not None
    action: Any = desc.schedule.action
    assert (action.workflow, action.task_queue, action.id) == (
        JOB_WORKFLOW,
        app.task_queue,
        f"cronjobs.tick:cron:{name}",
    )
    assert action.typed_search_attributes.get(SA_FUNCTION) == "cronjobs.tick"
    assert (desc.schedule.policy.overlap, desc.schedule.policy.catchup_window) == (
        ScheduleOverlapPolicy.SKIP,
        CATCHUP_WINDOW,
    )
    assert (await desc.memo())[MEMO_CRON] == {"app": app.name, "origin": "runtime"}


async def test_unregister_from_a_mutation_stops_the_cron(kitcn: KitcnClient, client: Client, names: list[str]) -> None:
    tok, name = token(), new_name(names, "stopped")
    await kitcn.crons.register(name, EVERY_2S, cronjobs.tick, {"token": tok})
    await wait_for(lambda: successful_ticks(kitcn, tok, 1), timeout=30)

    assert await kitcn.call(runtimecrons.unregister, {"name": name}) is True

    assert await describe(client, f"kitcn-cron:{name}") is None
    stopped_at = len(RUNS[tok])
    # Another 2-second cron runs twice: time enough for the stopped one to have run again.
    sentinel, sentinel_tok = new_name(names, "sentinel"), token()
    await kitcn.crons.register(sentinel, EVERY_2S, cronjobs.tick, {"token": sentinel_tok})
    await wait_for(lambda: len(RUNS[sentinel_tok]) >= 2, timeout=30)
    assert len(RUNS[tok]) <= stopped_at + 1  # at most a run already under way when it was removed
    assert await kitcn.call(runtimecrons.unregister, {"name": name}) is False


async def test_a_bad_registration_from_a_mutation_raises_at_the_call_and_buffers_nothing(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "bad")
    code = await kitcn.call(runtimecrons.register_badly_then_commit, {"name": name, "spec": {}, "token": "t"})
    assert code == "BAD_REQUEST"
    assert await describe(client, f"kitcn-cron:{name}") is None


async def test_a_mutation_sees_its_own_uncommitted_changes(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "own view")
    seen = await kitcn.call(runtimecrons.register_and_read, {"name": name, "spec": EVERY_2S, "token": "t"})
    assert seen["registered"]["spec"] == EVERY_2S and seen["registered"]["function"] == "cronjobs.tick"
    assert seen["listed"] is True and seen["after_unregister"] is None
    assert await describe(client, f"kitcn-cron:{name}") is None  # registered, then unregistered


# From an action or a client: immediate.


async def test_an_actions_registration_is_immediate_and_stands_when_the_action_fails(
    kitcn: KitcnClient, names: list[str]
) -> None:
    name = new_name(names, "from action")
    with pytest.raises(CRPCError, match="refused after registering"):
        await kitcn.call(runtimecrons.register_then_fail_action, {"name": name, "spec": DAILY, "token": "t"})
    row = await kitcn.crons.get(name)
    assert row is not None and row.function == "cronjobs.tick"


async def test_a_clients_registration_is_immediate_with_its_row(kitcn: KitcnClient, names: list[str]) -> None:
    name = new_name(names, "from client")
    spec = {"cron": "30 9 * * 1", "tz": "Europe/Paris"}
    await kitcn.crons.register(name, spec, "cronjobs.tick", {"token": "t"})

    row = await kitcn.crons.get(name)

    assert row is not None
    assert (row.name, row.spec, row.function, row.args, row.paused) == (
        name,
        spec,
        "cronjobs.tick",
        {"token": "t", "note": ""},
        False,
    )
    assert len(row.next_runs) == 3 and all(t > datetime.now(timezone.utc) for t in row.next_runs)
    assert {(t.astimezone(PARIS).weekday(), t.astimezone(PARIS).strftime("%H:%M")) for t in row.next_runs} == {
        (0, "09:30")
    }


async def test_registering_an_existing_name_updates_it_and_keeps_it_paused(
    kitcn: KitcnClient, client: Client, names: list[str]
) -> None:
    name = new_name(names, "updated")
    await kitcn.crons.register(name, DAILY, cronjobs.tick, {"token": "t", "note": "v1"})
    await client.get_schedule_handle(f"kitcn-cron:{name}").pause(note="held")

    await kitcn.call(runtimecrons.register, {"name": name, "spec": EVERY_2S, "token": "t2"})

    row = await kitcn.crons.get(name)
    assert row is not None and (row.spec, row.args, row.paused) == (EVERY_2S, {"token": "t2", "note": ""}, True)
    desc = await describe(client, f"kitcn-cron:{name}")
    assert desc is not None and desc.schedule.state.note == "held"


async def test_list_shows_this_apps_runtime_crons_only(kitcn: KitcnClient, names: list[str]) -> None:
    mine = new_name(names, "listed")
    declared = cron_jobs()
    declared.daily(new_name(names, "declared"), {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    await declared.sync(kitcn)
    await kitcn.crons.register(mine, DAILY, cronjobs.tick, {"token": "t"})

    async def shown() -> list[str] | None:
        listed_names = [row.name for row in await kitcn.crons.list()]
        return listed_names if mine in listed_names else None

    assert not {job.name for job in declared} & set(await wait_for(shown))


# Queries read only.


async def test_a_query_reads_runtime_crons_but_cannot_register_one(kitcn: KitcnClient, names: list[str]) -> None:
    name = new_name(names, "read")
    await kitcn.crons.register(name, DAILY, cronjobs.tick, {"token": "t"})
    seen = await kitcn.call(runtimecrons.read, {"name": name})
    assert seen["get"]["spec"] == {"cron": "0 4 * * *", "tz": "UTC"}
    with pytest.raises(CRPCError, match="a query cannot register crons") as err:
        await kitcn.call(runtimecrons.register_from_query, {"name": new_name(names, "q"), "spec": DAILY, "token": "t"})
    assert err.value.code == "BAD_REQUEST"


# The checks of declared crons, one clear error each.


@pytest.mark.parametrize(
    ("spec", "function", "args", "fragment"),
    [
        ({"cron": "61 * * * *"}, cronjobs.tick, {"token": "t"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "0 9 L * *"}, cronjobs.tick, {"token": "t"}, "uses syntax other than"),
        ({"cron": "30 9 * * *", "tz": "Europe/Pariss"}, cronjobs.tick, {"token": "t"}, "unknown time zone"),
        ({"interval_ms": 1500}, cronjobs.tick, {"token": "t"}, "whole number of seconds"),
        ({"interval_ms": 500}, cronjobs.tick, {"token": "t"}, "whole number of seconds"),
        ({"interval_ms": 0}, cronjobs.tick, {"token": "t"}, "must be positive"),
        ({"interval_ms": "2000"}, cronjobs.tick, {"token": "t"}, "must be a finite number"),
        ({"interval_ms": 2000, "cron": "* * * * *"}, cronjobs.tick, {"token": "t"}, "a spec is"),
        ("every 2s", cronjobs.tick, {"token": "t"}, "a spec is"),
        (EVERY_2S, cronjobs.peek, None, "cronjobs.peek is a query, and queries cannot be scheduled"),
        (EVERY_2S, "cronjobs.nothing", None, "unknown procedure 'cronjobs.nothing'"),
        (EVERY_2S, outside_the_app, None, "not part of this app"),
        (EVERY_2S, print, None, "the target must be a mutation or an action"),
        (EVERY_2S, cronjobs.tick, {"note": "no token"}, "invalid arguments for cronjobs.tick: token: Field required"),
        (EVERY_2S, cronjobs.beat, {"unexpected": 1}, "cronjobs.beat takes no arguments"),
    ],
    ids=[
        "minute out of range",
        "unsupported syntax",
        "unknown time zone",
        "fractional seconds",
        "under a second",
        "zero",
        "not a number",
        "two timings",
        "not a dict",
        "query target",
        "unknown function",
        "procedure outside the app",
        "not a procedure",
        "arguments the target refuses",
        "arguments to a target without input",
    ],
)
async def test_a_bad_registration_is_one_clear_error_naming_the_cron(
    kitcn: KitcnClient, client: Client, names: list[str], spec: Any, function: Any, args: Any, fragment: str
) -> None:
    name = new_name(names, "bad")
    with pytest.raises(CRPCError) as err:
        await kitcn.crons.register(name, spec, function, args)
    assert err.value.code == "BAD_REQUEST"
    assert err.value.message.startswith(f"cron {name!r}: ") and fragment in err.value.message
    assert await describe(client, f"kitcn-cron:{name}") is None


@pytest.mark.parametrize("name", ["", "   ", "line\nbreak", "x" * 201, 42])
async def test_a_bad_name_is_refused(kitcn: KitcnClient, name: Any) -> None:
    with pytest.raises(CRPCError, match="cron name") as err:
        await kitcn.crons.register(name, EVERY_2S, cronjobs.tick, {"token": "t"})
    assert err.value.code == "BAD_REQUEST"


async def test_a_public_only_client_cannot_register_a_private_target(
    client: Client, app: App, names: list[str]
) -> None:
    with pytest.raises(CRPCError, match="private procedure") as err:
        await KitcnClient(client, app, public_only=True).crons.register(
            new_name(names, "private"), EVERY_2S, cronjobs.tick, {"token": "t"}
        )
    assert err.value.code == "FORBIDDEN"


# Declared and runtime crons never take each other's names.


async def test_a_runtime_cron_cannot_take_a_declared_crons_name(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    name = new_name(names, "taken")
    declared = cron_jobs()
    declared.daily(name, {"hour_utc": 4, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    await declared.sync(kitcn)
    before = await describe(client, f"kitcn-cron:{name}")

    for attempt in (kitcn.crons.register(name, EVERY_2S, cronjobs.tick, {"token": "t"}), kitcn.crons.unregister(name)):
        with pytest.raises(CRPCError) as err:
            await attempt
        assert err.value.code == "CONFLICT"
        assert f"cron {name!r} of app {app.name!r}" in err.value.message and "a declared cron" in err.value.message
    with pytest.raises(CRPCError, match="a declared cron"):
        await kitcn.call(runtimecrons.register, {"name": name, "spec": EVERY_2S, "token": "t"})

    after = await describe(client, f"kitcn-cron:{name}")
    assert before is not None and after is not None
    assert after.raw_description.conflict_token == before.raw_description.conflict_token


async def test_a_declared_name_a_runtime_cron_holds_is_an_error_naming_both(
    kitcn: KitcnClient, client: Client, app: App, names: list[str]
) -> None:
    name = new_name(names, "runtime first")
    await kitcn.crons.register(name, DAILY, cronjobs.tick, {"token": "t"})
    declared = cron_jobs()
    fresh = new_name(names, "fresh")
    declared.daily(fresh, {"hour_utc": 5, "minute_utc": 0}, cronjobs.tick, {"token": "t"})
    declared.daily(name, {"hour_utc": 5, "minute_utc": 0}, cronjobs.tick, {"token": "t"})

    with pytest.raises(CronConflictError) as err:
        await declared.sync(kitcn)

    message = str(err.value)
    assert f"cron {name!r} of app {app.name!r}" in message and f"app {app.name!r} (a runtime cron)" in message
    assert "unregister the runtime cron" in message
    assert await describe(client, f"kitcn-cron:{fresh}") is None  # nothing written
    row = await kitcn.crons.get(name)
    assert row is not None and row.spec == {"cron": "0 4 * * *", "tz": "UTC"}
