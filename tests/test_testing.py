"""docs/semantics.md §11: kitcn_temporal.testing, an app under test with virtual time.

Each test gets a ``kitcn_env`` from the plugin (on the suite's server, in a namespace of its
own) for the test app; the cron tests start their envs with ``TestEnv.start`` directly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import HEARTBEAT
from helpers import token, wait_state
from kitcn_temporal import App, CronJobs, create_caller, cron_jobs
from kitcn_temporal.ops._devserver import start_dev_server
from kitcn_temporal.testing import TestEnv, TestEnvError
from kitcn_temporal.testing._tracker import PAUSED_NOTE
from testapp import cronjobs, runtimecrons, targets
from testapp.probe import RUNS, gate

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def kitcn_app() -> App:
    return App.discover("testapp", action_heartbeat_timeout=HEARTBEAT)


async def states(env: TestEnv, *job_ids: str) -> list[str]:
    rows = [await env.kitcn.system.get(job_id) for job_id in job_ids]
    return [row.state.kind if row else "missing" for row in rows]


# -- advance: delayed jobs, timers, retries ------------------------------------------------


async def test_advance_runs_the_jobs_due_in_the_span_and_leaves_later_ones_pending(kitcn_env: TestEnv) -> None:
    tok = token()
    soon = await kitcn_env.kitcn.scheduler.run_after(HOUR, "targets.touch", {"token": tok})
    later = await kitcn_env.kitcn.scheduler.run_after(3 * HOUR, "targets.touch", {"token": tok})

    await kitcn_env.advance(2 * HOUR)
    assert await states(kitcn_env, soon, later) == ["success", "pending"]
    assert len(RUNS[tok]) == 1

    await kitcn_env.advance(HOUR)
    assert await states(kitcn_env, soon, later) == ["success", "success"]
    assert len(RUNS[tok]) == 2


async def test_thirty_days_take_seconds_of_wall_time(kitcn_env: TestEnv) -> None:
    job_id = await kitcn_env.kitcn.scheduler.run_after(30 * DAY, "targets.touch", {"token": token()})
    started = time.monotonic()
    await kitcn_env.advance(30 * DAY)
    assert await states(kitcn_env, job_id) == ["success"]
    assert time.monotonic() - started < 15


async def test_now_is_the_virtual_time(kitcn_env: TestEnv) -> None:
    before = kitcn_env.now()
    assert before.tzinfo is not None and abs(before - datetime.now(timezone.utc)) < timedelta(seconds=5)
    await kitcn_env.advance(3 * DAY)
    moved = kitcn_env.now() - before
    assert 3 * DAY <= moved < 3 * DAY + timedelta(seconds=30)


async def test_a_job_a_job_schedules_is_due_from_its_creators_virtual_time(kitcn_env: TestEnv) -> None:
    tok = token()
    every = int(DAY.total_seconds() * 1000)
    await kitcn_env.kitcn.scheduler.run_after(every, "timers.chain", {"token": tok, "every_ms": every, "remaining": 2})

    await kitcn_env.advance(DAY)  # the first link runs on day 1 and schedules day 2: not yet due
    assert RUNS[tok] == [2]
    await kitcn_env.advance(DAY)
    assert RUNS[tok] == [2, 1]
    await kitcn_env.advance(2 * DAY)
    assert RUNS[tok] == [2, 1, 0]


async def test_a_job_scheduled_after_an_advance_is_due_from_the_envs_time(kitcn_env: TestEnv) -> None:
    await kitcn_env.advance(10 * DAY)
    job_id = await kitcn_env.kitcn.scheduler.run_after(HOUR, "targets.touch", {"token": token()})

    await kitcn_env.advance(timedelta(minutes=59))
    assert await states(kitcn_env, job_id) == ["pending"]
    await kitcn_env.advance(timedelta(minutes=1))
    assert await states(kitcn_env, job_id) == ["success"]


async def test_retries_an_hour_apart_run_within_the_span(kitcn_env: TestEnv) -> None:
    tok = token()
    job_id = await kitcn_env.kitcn.scheduler.run_after(0, "timers.hourly_retried", {"token": tok})

    await kitcn_env.advance(2 * HOUR + timedelta(minutes=1))

    assert await states(kitcn_env, job_id) == ["success"]
    assert RUNS[tok] == [1, 2, 3]


@pytest.mark.parametrize(
    "span",
    [timedelta(0), timedelta(seconds=-5), timedelta(microseconds=999), 3600],
    ids=["zero", "negative", "under a millisecond", "a number"],
)
async def test_advance_refuses_a_span_under_a_millisecond(kitcn_env: TestEnv, span: object) -> None:
    with pytest.raises(TestEnvError, match=r"^advance\(\) takes a timedelta of at least 1 ms, not .*in milliseconds$"):
        await kitcn_env.advance(span)  # type: ignore[arg-type]


async def test_advance_that_cannot_finish_names_the_jobs_still_running(kitcn_env: TestEnv) -> None:
    job_id = await kitcn_env.kitcn.scheduler.run_after(HOUR, "targets.always_transient", {"token": token()})
    with pytest.raises(TestEnvError) as caught:
        await kitcn_env.advance(2 * HOUR, timeout=3)
    assert str(caught.value).startswith("advance(2:00:00) did not finish within 3s: 1 job(s) still due or running:")
    assert f"targets.always_transient (job {job_id}, pending)" in str(caught.value)
    await kitcn_env.kitcn.scheduler.cancel(job_id)


# -- wait_idle -----------------------------------------------------------------------------


async def test_wait_idle_returns_once_no_job_is_due_or_running(kitcn_env: TestEnv) -> None:
    tok = token()
    now_ids = [await kitcn_env.kitcn.scheduler.run_after(0, "targets.touch_action", {"token": tok}) for _ in range(3)]
    later = await kitcn_env.kitcn.scheduler.run_after(DAY, "targets.touch", {"token": tok})

    await kitcn_env.wait_idle()

    assert await states(kitcn_env, *now_ids, later) == ["success"] * 3 + ["pending"]


async def test_wait_idle_times_out_naming_the_jobs_still_running(kitcn_env: TestEnv) -> None:
    tok = token()
    job_id = await kitcn_env.kitcn.scheduler.run_after(0, "targets.held_action", {"token": tok})
    await wait_state(kitcn_env.kitcn, job_id, "inProgress")

    with pytest.raises(TestEnvError) as caught:
        await kitcn_env.wait_idle(timeout=1)
    assert str(caught.value) == (
        f"wait_idle() timed out after 1s: 1 job(s) still due or running: targets.held_action (job {job_id}, inProgress)"
    )

    gate(tok).set()
    await kitcn_env.wait_idle()
    assert await states(kitcn_env, job_id) == ["success"]


# -- jobs that never settle -----------------------------------------------------------------

RECURSION = (
    r"the jobs keep scheduling new jobs \(recursive scheduling: {how}\); "
    r"(\d+) run\(s\) scheduled by jobs while it waited: {runs}"
)


async def test_wait_idle_says_when_a_function_keeps_scheduling_itself(kitcn_env: TestEnv) -> None:
    tok = token()
    await kitcn_env.kitcn.scheduler.run_after(0, "timers.forever", {"token": tok})
    with pytest.raises(TestEnvError) as caught:
        await kitcn_env.wait_idle(timeout=2)
    message = str(caught.value)
    pattern = RECURSION.format(how="timers.forever schedules itself", runs=r"timers.forever (\d+)")
    found = re.match(rf"wait_idle\(\) timed out after 2s: {pattern}; ", message)
    assert found is not None, message
    assert int(found[1]) == int(found[2]) >= 2
    assert "no job is due or running now" not in message
    gate(tok).set()
    await kitcn_env.wait_idle()


async def test_wait_idle_names_every_function_of_a_recursion_through_others(kitcn_env: TestEnv) -> None:
    tok = token()
    await kitcn_env.kitcn.scheduler.run_after(0, "timers.ping", {"token": tok})
    with pytest.raises(TestEnvError) as caught:
        await kitcn_env.wait_idle(timeout=2)
    message = str(caught.value)
    how = "timers.ping schedules timers.pong schedules timers.ping"
    runs = r"timers.p[io]ng \d+, timers.p[io]ng \d+"
    assert re.search(RECURSION.format(how=how, runs=runs), message), message
    gate(tok).set()
    await kitcn_env.wait_idle()


async def test_advance_says_when_jobs_keep_scheduling_new_jobs(kitcn_env: TestEnv) -> None:
    tok = token()
    await kitcn_env.kitcn.scheduler.run_after(0, "timers.forever", {"token": tok, "every_ms": 60_000})
    with pytest.raises(TestEnvError) as caught:
        await kitcn_env.advance(DAY, timeout=3)
    message = str(caught.value)
    pattern = RECURSION.format(how="timers.forever schedules itself", runs=r"timers.forever \d+")
    assert re.match(rf"advance\(1 day, 0:00:00\) did not finish within 3s: {pattern}; ", message), message
    gate(tok).set()
    await kitcn_env.wait_idle()


async def test_a_chain_that_ends_is_not_recursion(kitcn_env: TestEnv) -> None:
    tok = token()
    await kitcn_env.kitcn.scheduler.run_after(0, "timers.chain", {"token": tok, "every_ms": 0, "remaining": 5})
    await kitcn_env.wait_idle()
    assert RUNS[tok] == [5, 4, 3, 2, 1, 0]


# -- the env: its namespace, its database, its end -----------------------------------------


async def test_each_env_has_a_namespace_of_its_own(kitcn_env: TestEnv, kitcn_server: str) -> None:
    job_id = await kitcn_env.kitcn.scheduler.run_after(DAY, "targets.touch", {"token": token()})
    async with TestEnv.start(App.discover("testapp"), server=kitcn_server) as other:
        assert other.namespace != kitcn_env.namespace
        assert await other.kitcn.system.get(job_id) is None
        assert await other.kitcn.system.list() == []


async def test_an_app_with_a_database_gets_a_fresh_sqlite_file(kitcn_server: str, tmp_path: Path) -> None:
    app = App.discover("testapp_sql", database=f"sqlite+aiosqlite:///{tmp_path / 'mine.db'}")
    async with TestEnv.start(app, server=kitcn_server) as env:
        assert env.app.database == f"sqlite+aiosqlite:///{env.directory / 'app.db'}"
        assert env.app.store is not None and env.app.store is not app.store
    assert not env.directory.exists()


async def test_a_database_given_is_the_one_used(kitcn_server: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'given.db'}"
    async with TestEnv.start(App.discover("testapp_sql"), database=url, server=kitcn_server) as env:
        assert env.app.database == url


async def test_a_server_that_does_not_skip_time_is_named_with_the_flags_it_needs() -> None:
    plain = start_dev_server()
    try:
        with pytest.raises(TestEnvError) as caught:
            async with TestEnv.start(App.discover("testapp"), server=plain.address):
                pass
    finally:
        plain.stop()
    assert str(caught.value).startswith(f"the Temporal server at {plain.address} does not skip time (")
    assert "start it with kitcn_temporal.testing.TIME_SKIPPING_ARGS (--dynamic-config-value" in str(caught.value)


@pytest.mark.parametrize(
    "use",
    [
        lambda env: env.now(),
        lambda env: env.kitcn,
        lambda env: env.advance(HOUR),
        lambda env: env.wait_idle(),
        lambda env: env.trigger_cron("x"),
    ],
    ids=["now", "kitcn", "advance", "wait_idle", "trigger_cron"],
)
async def test_an_env_used_after_it_stopped_says_so(kitcn_server: str, use: Callable[[TestEnv], object]) -> None:
    async with TestEnv.start(App.discover("testapp"), server=kitcn_server) as env:
        pass
    with pytest.raises(TestEnvError, match=r"this TestEnv has stopped: use it inside `async with TestEnv.start"):
        result = use(env)
        if hasattr(result, "__await__"):
            await result  # type: ignore[misc]


# -- crons -----------------------------------------------------------------------------------


def hourly_tick(tok: str) -> CronJobs:
    crons = cron_jobs()
    crons.interval("tick", {"hours": 1}, cronjobs.tick, {"token": tok})
    return crons


def run_times(tok: str) -> list[int]:
    return sorted(job.scheduled_time for _, job, _ in RUNS[tok])


async def test_advance_runs_each_cron_time_in_the_span_once(kitcn_server: str) -> None:
    tok = token()
    async with TestEnv.start(App.discover("testapp"), crons=hourly_tick(tok), server=kitcn_server) as env:
        start = env.now()
        await env.advance(timedelta(minutes=90))
        await env.advance(timedelta(minutes=90))
        times = run_times(tok)
        assert len(times) == 3 and len(set(times)) == 3
        for ms in times:  # on the hour, virtual times within the span
            at = datetime.fromtimestamp(ms / 1000, timezone.utc)
            assert (at.minute, at.second) == (0, 0) and start < at <= env.now()


async def test_an_envs_cron_schedules_are_paused(kitcn_server: str) -> None:
    async with TestEnv.start(App.discover("testapp"), crons=hourly_tick(token()), server=kitcn_server) as env:
        desc = await env.client.get_schedule_handle("kitcn-cron:tick").describe()
        assert (desc.schedule.state.paused, desc.schedule.state.note) == (True, PAUSED_NOTE)


async def test_trigger_cron_runs_it_now_as_a_job(kitcn_server: str) -> None:
    tok = token()
    async with TestEnv.start(App.discover("testapp"), crons=hourly_tick(tok), server=kitcn_server) as env:
        job_id = await env.trigger_cron("tick")
        await env.wait_idle()
        assert job_id.startswith("cronjobs.tick:cron:tick-")
        assert await states(env, job_id) == ["success"]
        assert [kind for kind, _, _ in RUNS[tok]] == ["tick"]


async def test_trigger_cron_of_an_unknown_name_lists_the_declared_ones(kitcn_server: str, kitcn_env: TestEnv) -> None:
    async with TestEnv.start(App.discover("testapp"), crons=hourly_tick(token()), server=kitcn_server) as env:
        with pytest.raises(TestEnvError, match=r"^no cron named 'tock': the env's crons are 'tick'$"):
            await env.trigger_cron("tock")
    with pytest.raises(TestEnvError, match=r"^no cron named 'tick': the env's crons are none \(TestEnv.start\(app"):
        await kitcn_env.trigger_cron("tick")


async def test_advance_refuses_a_span_with_too_many_runs_of_a_cron(kitcn_server: str) -> None:
    crons = cron_jobs()
    crons.interval("every second", {"seconds": 1}, targets.touch, {"token": token()})
    async with TestEnv.start(App.discover("testapp"), crons=crons, server=kitcn_server) as env:
        with pytest.raises(
            TestEnvError,
            match=r"^cron 'every second' has 1000 or more runs between .* more than the 500 one advance\(\) starts",
        ):
            await env.advance(HOUR)


async def test_a_cron_registered_at_run_time_runs_on_virtual_time(kitcn_env: TestEnv) -> None:
    """docs/semantics.md §11-§12: a runtime cron's runs come from advance, as a declared cron's."""
    tok, name = token(), f"rt {token()[:8]}"
    await create_caller(kitcn_env.kitcn, runtimecrons).register(name=name, spec={"interval_ms": 3_600_000}, token=tok)
    row = await kitcn_env.kitcn.crons.get(name)
    assert row is not None and row.paused  # the wall clock starts none of its runs
    await kitcn_env.advance(3 * HOUR)
    assert len(RUNS[tok]) == 3
    run = await kitcn_env.trigger_cron(name)
    await kitcn_env.wait_idle()
    assert await states(kitcn_env, run) == ["success"] and len(RUNS[tok]) == 4
    assert await create_caller(kitcn_env.kitcn, runtimecrons).unregister(name=name)
    await kitcn_env.advance(2 * HOUR)  # unregistered: no more runs
    assert len(RUNS[tok]) == 4
