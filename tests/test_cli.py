"""docs/semantics.md §8: the ``kitcn-temporal`` command line, run as a separate process against real Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import pty
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from clicrons import crons as cli_crons
from clihelpers import TESTS, Launcher, Running, assert_one_line_error, cli, cli_args, cli_env, server_processes
from conftest import connect
from helpers import settle_visibility, token, wait_state
from kitcn_temporal import App, KitcnClient, create_caller
from kitcn_temporal.cli._parse import UsageError, parse_duration_ms, parse_time_ms
from kitcn_temporal.ops._devserver import DevServer, free_port, port_open
from testapp import table
from testapp.probe import RUNS, wait_for


@pytest.fixture(scope="module")
def address(temporal_server: DevServer) -> str:
    return temporal_server.address


@pytest.fixture(scope="module")
def app_args(app: App) -> list[str]:
    """Options naming the suite's test app and the queue its in-process worker serves."""
    return ["--app", "testapp", "--task-queue", app.task_queue]


@pytest.fixture
async def start(address: str, tmp_path: Path) -> AsyncIterator[Launcher]:
    """Starts long-running commands; kills any still running when the test ends."""
    launcher = Launcher(address, tmp_path)
    yield launcher
    await launcher.kill_all()


# -- setup -------------------------------------------------------------------------------


async def test_setup_is_idempotent_and_reports_seven_day_retention(address: str, client: Client) -> None:
    await cli(address, "setup", "--json")
    again = await cli(address, "setup", "--json")
    assert again.code == 0, again.err
    assert again.json() == {
        "namespace": "default",
        "addedSearchAttributes": [],
        "retentionChanged": False,
        "retentionDays": 7,
    }


async def test_setup_prints_a_readable_summary(address: str, client: Client) -> None:
    result = await cli(address, "setup")
    assert result.code == 0, result.err
    assert "retention: 7 days" in result.out and "KitcnScheduledTime" in result.out


# -- run and schedule --------------------------------------------------------------------


async def test_run_prints_a_query_output_as_json(address: str, app_args: list[str], kitcn: KitcnClient) -> None:
    result = await cli(address, "run", "shapes.add", *app_args, "--args", '{"x": 2, "y": 3}', "--json")
    assert result.code == 0, result.err
    assert result.json() == {"total": 5}


async def test_run_prints_a_string_output_plainly_unless_json(
    address: str, app_args: list[str], kitcn: KitcnClient
) -> None:
    plain = await cli(address, "run", "shapes.no_args", *app_args)
    as_json = await cli(address, "run", "shapes.no_args", *app_args, "--json")
    assert (plain.out, as_json.json()) == ("nothing needed\n", "nothing needed")


async def test_run_calls_a_mutation_in_its_own_process_without_a_worker(address: str, client: Client) -> None:
    tok, unserved = token(), ["--app", "testapp", "--task-queue", f"nobody-serves-{token()[:8]}"]
    result = await cli(address, "run", "targets.touch", *unserved, "--args", json.dumps({"token": tok}), "--json")
    assert result.code == 0, result.err
    assert result.json() == 1
    assert RUNS[tok] == []  # it ran in the command's process, not on this process's worker
    query = await cli(address, "run", "shapes.add", *unserved, "--args", '{"x": 2, "y": 3}', "--json")
    assert query.json() == {"total": 5}


async def test_run_calls_an_action_on_the_worker(address: str, app_args: list[str], kitcn: KitcnClient) -> None:
    tok = token()
    result = await cli(address, "run", "targets.touch_action", *app_args, "--args", json.dumps({"token": tok}))
    assert result.code == 0, result.err
    assert result.out == "done\n"
    assert [entry[0] for entry in RUNS[tok]] == ["touch_action"]


async def test_schedule_after_leaves_a_pending_job_that_jobs_cancel_cancels(
    address: str, app_args: list[str], kitcn: KitcnClient
) -> None:
    tok = token()
    scheduled = await cli(
        address, "schedule", "targets.touch", *app_args, "--after", "10m", "--args", json.dumps({"token": tok}),
        "--json",
    )  # fmt: skip
    assert scheduled.code == 0, scheduled.err
    job = scheduled.json()
    assert isinstance(job, dict) and job["state"]["kind"] == "pending" and job["name"] == "targets.touch"
    got = await cli(address, "jobs", "get", job["id"], "--json")
    assert got.json()["state"] == {"kind": "pending", "error": None}
    canceled = await cli(address, "jobs", "cancel", job["id"], "--json")
    assert canceled.code == 0, canceled.err
    assert canceled.json()["state"]["kind"] == "canceled"
    assert RUNS[tok] == []


async def test_schedule_after_five_seconds_is_due_five_seconds_later(
    address: str, app_args: list[str], kitcn: KitcnClient
) -> None:
    result = await cli(
        address, "schedule", "targets.touch", *app_args, "--after", "5s", "--args", json.dumps({"token": token()}),
        "--json",
    )  # fmt: skip
    job = result.json()
    assert isinstance(job, dict)
    # Due 5 s after the command read the clock, which is a little before the job was created.
    assert 2_000 <= job["scheduledTime"] - job["creationTime"] <= 5_000


async def test_schedule_at_a_past_time_runs_at_once(address: str, app_args: list[str], kitcn: KitcnClient) -> None:
    tok = token()
    result = await cli(
        address, "schedule", "targets.touch", *app_args, "--at", "2020-01-01T00:00:00Z",
        "--args", json.dumps({"token": tok}), "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    job_id = result.json()["id"]
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert len(RUNS[tok]) == 1


async def test_schedule_prints_the_job_with_times_in_utc(address: str, app_args: list[str], kitcn: KitcnClient) -> None:
    result = await cli(
        address, "schedule", "targets.touch", *app_args, "--at", "2031-05-04T09:30:00+02:00",
        "--args", json.dumps({"token": token()}),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "2031-05-04 07:30:00 UTC" in result.out
    assert "pending" in result.out and "targets.touch" in result.out


# -- jobs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def failed_job(kitcn: KitcnClient) -> str:
    """A job of targets.developer_error, failed and visible in Temporal's list."""
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, "targets.developer_error", {"token": tok})
    await wait_state(kitcn, job_id)
    await settle_visibility(kitcn, tok)
    return job_id


async def test_jobs_list_filters_by_state_and_name(address: str, failed_job: str) -> None:
    result = await cli(
        address, "jobs", "list", "--state", "failed", "--name", "targets.developer_error", "--limit", "1000", "--json"
    )
    assert result.code == 0, result.err
    rows = result.json()["page"]
    assert failed_job in [row["id"] for row in rows]
    assert {(row["name"], row["state"]["kind"]) for row in rows} == {("targets.developer_error", "failed")}
    assert "bad things" in next(row for row in rows if row["id"] == failed_job)["state"]["error"]


async def test_jobs_list_prints_a_table_with_utc_times(address: str, failed_job: str) -> None:
    result = await cli(address, "jobs", "list", "--name", "targets.developer_error", "--limit", "1000")
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split()[:3] == ["ID", "FUNCTION", "STATE"] and "SCHEDULED (UTC)" in header
    row = next(r for r in rows if r.startswith(failed_job))
    assert "failed" in row and "bad things" in row
    assert "\x1b[" not in result.out  # no colour when stdout is not a terminal


async def test_job_states_are_coloured_on_a_terminal(address: str, failed_job: str) -> None:
    primary, secondary = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            *cli_args("jobs", "get", failed_job),
            cwd=TESTS, env=cli_env(address), stdout=secondary, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.close(secondary)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err
        output = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closes once the command has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
    assert "\x1b[31mfailed\x1b[0m" in output.decode()


@pytest.fixture(scope="module")
async def three_listed(kitcn: KitcnClient) -> AsyncIterator[set[str]]:
    """Three pending jobs of table.listed, visible in Temporal's list; canceled at the end."""
    tok = token()
    later = create_caller(kitcn, table).schedule
    ids = {await later.after(600_000).listed(token=tok, index=i) for i in range(3)}

    async def visible() -> bool:
        return {r.id for r in await kitcn.system.list(state="pending", name="table.listed")} == ids

    await wait_for(visible)
    yield ids
    for job_id in ids:
        await kitcn.scheduler.cancel(job_id)


LISTED = ("jobs", "list", "--state", "pending", "--name", "table.listed")


def listed_ids(out: str, ids: set[str]) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in ids]


async def test_jobs_list_says_when_rows_were_left_out_and_how_to_see_them(address: str, three_listed: set[str]) -> None:
    result = await cli(address, *LISTED, "--limit", "2")
    assert result.code == 0, result.err
    assert len(listed_ids(result.out, three_listed)) == 2
    note = result.out.splitlines()[-1]
    assert note.startswith("note: 2 of 3 jobs shown: --limit 3 or --all for all of them, --cursor ")
    assert note.endswith(" for the next 2")


async def test_jobs_list_cursor_continues_where_the_previous_page_stopped(address: str, three_listed: set[str]) -> None:
    first = await cli(address, *LISTED, "--limit", "2")
    cursor = first.out.split("--cursor ")[1].split()[0]
    rest = await cli(address, *LISTED, "--limit", "2", "--cursor", cursor)
    assert rest.code == 0, rest.err
    assert sorted(listed_ids(first.out, three_listed) + listed_ids(rest.out, three_listed)) == sorted(three_listed)
    assert "note:" not in rest.out


async def test_jobs_list_all_walks_every_page(address: str, three_listed: set[str]) -> None:
    result = await cli(address, *LISTED, "--all")
    assert result.code == 0, result.err
    assert sorted(listed_ids(result.out, three_listed)) == sorted(three_listed)
    assert "note:" not in result.out


async def test_jobs_list_json_says_whether_more_rows_exist(address: str, three_listed: set[str]) -> None:
    partial = (await cli(address, *LISTED, "--limit", "2", "--json")).json()
    assert (len(partial["page"]), partial["isDone"]) == (2, False)
    rest = (await cli(address, *LISTED, "--cursor", partial["continueCursor"], "--json")).json()
    assert (len(rest["page"]), rest["isDone"], rest["continueCursor"]) == (1, True, None)


async def test_jobs_get_prints_the_job_field_by_field(address: str, failed_job: str) -> None:
    result = await cli(address, "jobs", "get", failed_job)
    assert result.code == 0, result.err
    fields = dict(line.split(None, 1) for line in result.out.splitlines())
    assert fields["id"] == failed_job and fields["function"] == "targets.developer_error"
    assert fields["state"] == "failed" and "bad things" in fields["error"]
    assert fields["scheduled"].split(" (")[0].endswith(" UTC") and fields["completed"].endswith(" UTC")


async def test_schedule_with_a_key_and_a_priority_shows_both_and_the_key_gives_the_same_job(address: str) -> None:
    key = f"cli:{uuid.uuid4().hex}"
    args = ["schedule", "targets.touch", "--app", "testapp", "--after", "1h", "--args", '{"token": "t"}']
    first = await cli(address, *args, "--key", key, "--priority", "1")
    assert first.code == 0, first.err
    fields = dict(line.split(None, 1) for line in first.out.splitlines())
    assert fields["id"] == f"key:{key}" and fields["key"] == key and fields["priority"] == "1"
    again = await cli(address, *args, "--key", key, "--json")
    assert again.json()["id"] == f"key:{key}"
    assert (await cli(address, "jobs", "cancel", f"key:{key}")).code == 0


# -- mistakes: one line on stderr, a non-zero exit, no traceback ----------------------------


MISTAKES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "unknown function": (["run", "orders.nowhere", "--app", "testapp"], ("unknown procedure 'orders.nowhere'",)),
    "bad json": (["run", "shapes.add", "--app", "testapp", "--args", "{x: 1"], ("--args is not valid JSON",)),
    "args not an object": (["run", "shapes.add", "--app", "testapp", "--args", "[1, 2]"], ("JSON object",)),
    "invalid args": (
        ["schedule", "targets.touch", "--app", "testapp", "--after", "1s", "--args", '{"token": 5}'],
        ("invalid arguments for targets.touch", "token"),
    ),
    "bad duration": (
        ["schedule", "targets.touch", "--app", "testapp", "--after", "5 parsecs", "--args", '{"token": "t"}'],
        ("--after '5 parsecs' is not a duration",),
    ),
    "naive --at": (
        ["schedule", "targets.touch", "--app", "testapp", "--at", "2030-01-01T09:00:00", "--args", '{"token": "t"}'],
        ("has no timezone",),
    ),
    "both --after and --at": (
        ["schedule", "targets.touch", "--app", "testapp", "--after", "1s", "--at", "0"],
        ("not allowed with",),
    ),
    "scheduling a query": (
        ["schedule", "shapes.add", "--app", "testapp", "--after", "1s", "--args", '{"x": 1, "y": 2}'],
        ("shapes.add is a query",),
    ),
    "unknown job id": (["jobs", "get", "no-such-job"], ("no scheduled function has id 'no-such-job'",)),
    "cancel of an unknown job id": (["jobs", "cancel", "no-such-job"], ("no scheduled function has id",)),
    "malformed job id": (["jobs", "get", "tab\there"], ("malformed job id",)),
    "unknown state": (["jobs", "list", "--state", "done"], ("invalid choice: 'done'",)),
    "bad function name": (["jobs", "list", "--name", "not a name"], ("invalid procedure name",)),
    "unknown app": (["run", "shapes.add", "--app", "no_such_app"], ("cannot import the app package 'no_such_app'",)),
    "missing command": (["jobs"], ("required",)),
    "no worker for the queue": (
        ["run", "targets.touch_action", "--app", "testapp", "--task-queue", "nobody-serves-this", "--args", "{}"],
        ("no worker serves task queue 'nobody-serves-this'",),
    ),
    "a garbage address": (
        ["jobs", "list", "--address", "garbage address"],
        ("'garbage address' is not a Temporal address",),
    ),
    "jobs get in an unknown namespace": (
        ["jobs", "get", "some-job", "--namespace", "nowhere"],
        ("namespace 'nowhere' does not exist at 127.0.0.1:",),
    ),
    "jobs cancel in an unknown namespace": (
        ["jobs", "cancel", "some-job", "--namespace", "nowhere"],
        ("namespace 'nowhere' does not exist at 127.0.0.1:",),
    ),
    "jobs list in an unknown namespace": (
        ["jobs", "list", "--namespace", "nowhere"],
        ("namespace 'nowhere' does not exist at 127.0.0.1:",),
    ),
    "a negative --after": (
        ["schedule", "targets.touch", "--app", "testapp", "--after", "-5s", "--args", '{"token": "t"}'],
        ("--after '-5s' must be >= 0",),
    ),
    "--all with --limit": (["jobs", "list", "--all", "--limit", "5"], ("--all lists every job: drop --limit",)),
    "a malformed cursor": (["jobs", "list", "--cursor", "not-a-cursor"], ("invalid cursor 'not-a-cursor'",)),
    "crons that are not a cron_jobs() set": (
        ["crons", "list", "--app", "testapp", "--crons", "clicrons:not_crons"],
        ("not a cron_jobs() set",),
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
async def test_mistakes_print_one_line_and_exit_non_zero(address: str, client: Client, case: str) -> None:
    args, fragments = MISTAKES[case]
    assert_one_line_error(await cli(address, *args), *fragments)


async def test_an_unreachable_server_is_one_line(address: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    result = await cli(address, "jobs", "list", "--address", nowhere)
    assert_one_line_error(result, f"cannot reach Temporal at {nowhere}")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("5s", 5000), ("1500ms", 1500), ("2m", 120_000), ("1h", 3_600_000), ("1d", 86_400_000), ("250", 250)],
)
def test_durations_take_units_or_milliseconds(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5 s", "5w", "1e3", "soon", "--5s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration_ms(text)


@pytest.mark.parametrize("text", ["-5s", "-1", "-0.5m"])
def test_negative_durations_must_be_at_least_zero(text: str) -> None:
    with pytest.raises(UsageError, match=f"--after '{text}' must be >= 0"):
        parse_duration_ms(text)


async def test_version_prints_the_installed_version(address: str) -> None:
    result = await cli(address, "--version")
    assert (result.code, result.out) == (0, f"kitcn-temporal {importlib.metadata.version('kitcn-temporal')}\n")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("2030-01-01T00:00:00Z", 1_893_456_000_000), ("2030-01-01T01:00:00+01:00", 1_893_456_000_000), ("42", 42)],
)
def test_times_are_aware_iso_or_epoch_milliseconds(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


# -- crons -------------------------------------------------------------------------------


@pytest.fixture
async def synced_cli_crons(client: Client) -> AsyncIterator[None]:
    """Deletes the schedules of ``clicrons`` when the test ends."""
    yield
    for job in cli_crons:
        with contextlib.suppress(RPCError):  # not created by this test
            await client.get_schedule_handle(job.schedule_id).delete()


async def test_crons_sync_creates_then_changes_nothing(
    address: str, app_args: list[str], synced_cli_crons: None
) -> None:
    first = await cli(address, "crons", "sync", *app_args, "--crons", "clicrons:crons", "--json")
    assert first.code == 0, first.err
    assert sorted(first.json()["created"]) == sorted(job.name for job in cli_crons)
    again = await cli(address, "crons", "sync", *app_args, "--crons", "clicrons:crons", "--json")
    assert again.json() == {"created": [], "updated": [], "deleted": [], "unchanged": [j.name for j in cli_crons]}


async def test_crons_sync_of_a_name_another_app_holds_is_one_line_naming_both(
    address: str, app: App, app_args: list[str], synced_cli_crons: None
) -> None:
    await cli(address, "crons", "sync", *app_args, "--crons", "clicrons:crons")
    other = ["--app", "testapp", "--task-queue", "another-service", "--app-name", "billing"]
    result = await cli(address, "crons", "sync", *other, "--crons", "clicrons:crons")
    assert_one_line_error(result, "cron 'cli hourly tick' of app 'billing'", f"belongs to app {app.name!r}")


async def test_crons_list_shows_spec_next_runs_and_last_run(
    address: str, app_args: list[str], client: Client, kitcn: KitcnClient, synced_cli_crons: None
) -> None:
    await cli(address, "crons", "sync", *app_args, "--crons", "clicrons:crons")
    await client.get_schedule_handle("kitcn-cron:cli hourly tick").trigger()

    async def ran() -> bool:
        rows = await cli_crons.list(kitcn)
        return any(r.last_run is not None and r.last_run.state.kind == "success" for r in rows)

    await wait_for(ran, timeout=30)
    result = await cli(address, "crons", "list", *app_args, "--crons", "clicrons:crons", "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in result.json()}
    hourly, mornings = rows["cli hourly tick"], rows["cli weekday mornings"]
    assert hourly["spec"] == "every 1h" and len(hourly["nextRuns"]) == 3
    assert hourly["lastRun"]["state"]["kind"] == "success"
    assert mornings["timezone"] == "Europe/Paris" and mornings["lastRun"] is None and not mornings["paused"]
    assert (hourly["overlap"], hourly["jitterMs"]) == ("skip", 0)
    assert (mornings["overlap"], mornings["jitterMs"]) == ("buffer_one", 90_000)
    table = await cli(address, "crons", "list", *app_args, "--crons", "clicrons:crons")
    assert "0 9 * * mon-fri (Europe/Paris)" in table.out and "success" in table.out
    (line,) = [line for line in table.out.splitlines() if line.startswith("cli weekday mornings")]
    assert "buffer_one, jitter 1m30s" in line


@pytest.fixture
async def runtime_cron(client: Client, kitcn: KitcnClient) -> AsyncIterator[str]:
    """A runtime cron of the suite's app, deleted when the test ends."""
    name = f"cli runtime {token()[:8]}"
    await kitcn.crons.register(name, {"cron": "15 8 * * *", "tz": "Europe/Paris"}, "cronjobs.tick", {"token": "t"})
    yield name
    await client.get_schedule_handle(f"kitcn-cron:{name}").delete()


async def test_crons_list_shows_declared_and_runtime_crons_marked(
    address: str, app_args: list[str], kitcn: KitcnClient, synced_cli_crons: None, runtime_cron: str
) -> None:
    await cli(address, "crons", "sync", *app_args, "--crons", "clicrons:crons")
    # crons list reads Temporal's schedule list, which lags a registration by about a second.
    await wait_for(lambda: _has_row(kitcn, runtime_cron))

    result = await cli(address, "crons", "list", *app_args, "--crons", "clicrons:crons", "--json")

    assert result.code == 0, result.err
    rows = {row["name"]: row for row in result.json()}
    assert {rows[job.name]["origin"] for job in cli_crons} == {"declared"}
    assert rows[runtime_cron]["origin"] == "runtime" and rows[runtime_cron]["spec"] == "15 8 * * *"
    table = await cli(address, "crons", "list", *app_args, "--crons", "clicrons:crons")
    (line,) = [line for line in table.out.splitlines() if line.startswith(runtime_cron)]
    assert line.split()[3:5] == ["runtime", "cronjobs.tick"] and "15 8 * * * (Europe/Paris)" in line
    assert "active" in line


async def test_crons_list_without_declarations_shows_the_runtime_crons(
    address: str, app_args: list[str], kitcn: KitcnClient, runtime_cron: str
) -> None:
    await wait_for(lambda: _has_row(kitcn, runtime_cron))
    result = await cli(address, "crons", "list", *app_args, "--crons", "", "--json")
    assert result.code == 0, result.err
    assert runtime_cron in {row["name"] for row in result.json() if row["origin"] == "runtime"}


async def test_crons_backfill_runs_each_time_of_the_window_and_says_how_many(
    address: str, app_args: list[str], kitcn: KitcnClient, runtime_cron: str
) -> None:
    day = datetime.now(timezone.utc).date() - timedelta(days=2)
    paris = ZoneInfo("Europe/Paris")
    start, end = (datetime.combine(day, time(hour), tzinfo=paris).isoformat() for hour in (8, 10))
    result = await cli(address, "crons", "backfill", runtime_cron, *app_args, "--start", start, "--end", end)
    assert result.code == 0, result.err
    said = f"cron {runtime_cron!r}: 1 run(s) from {start} to {end} started now (Temporal's backfill)"
    assert result.out.strip() == said
    due = datetime.combine(day, time(8, 15), tzinfo=paris).astimezone(timezone.utc)  # the cron's time that day
    job = await wait_state(kitcn, f"cronjobs.tick:cron:{runtime_cron}-{due:%Y-%m-%dT%H:%M:%SZ}")
    assert job.scheduled_time == int(due.timestamp() * 1000)


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--start", "2026-01-01T10:00:00", "--end", "2026-01-01T11:00:00Z"], ["--start", "has no timezone"]),
        (["--start", "2026-01-01T10:00:00Z", "--end", "soon"], ["--end 'soon' is not a time"]),
        (["--start", "2026-01-01T11:00:00Z", "--end", "2026-01-01T10:00:00Z"], ["BAD_REQUEST", "must come after"]),
        (["--start", "2026-01-01T10:00:00Z"], ["--end"]),
    ],
    ids=["naive", "not a time", "end before start", "no end"],
)
async def test_crons_backfill_of_a_bad_window_is_one_line(
    address: str, app_args: list[str], runtime_cron: str, options: list[str], fragments: list[str]
) -> None:
    result = await cli(address, "crons", "backfill", runtime_cron, *app_args, *options)
    assert_one_line_error(result, *fragments)


async def test_crons_backfill_of_an_unknown_cron_is_one_line(address: str, app_args: list[str]) -> None:
    window = ["--start", "2026-01-01T10:00:00Z", "--end", "2026-01-01T11:00:00Z"]
    result = await cli(address, "crons", "backfill", "no such cron", *app_args, *window)
    assert_one_line_error(result, "NOT_FOUND", "no cron 'no such cron'")


async def _has_row(kitcn: KitcnClient, name: str) -> bool:
    return any(row.name == name for row in await cli_crons.list(kitcn))


# -- worker and dev ----------------------------------------------------------------------


async def test_worker_serves_jobs_and_stops_cleanly_on_sigterm(
    start: Launcher, client: Client, app: App, kitcn: KitcnClient
) -> None:
    queue = f"cli-worker-{uuid.uuid4().hex[:8]}"
    worker: Running = await start("worker", "--app", "testapp", "--task-queue", queue, "--crons", "")
    await worker.wait_output("worker serving")
    other_queue = KitcnClient(client, app, task_queue=queue)
    job_id = await other_queue.scheduler.run_after(0, "targets.touch", {"token": token()})
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert await worker.stop(signal.SIGTERM) == 0
    assert "Traceback" not in worker.err.read_text()


async def test_worker_lets_a_running_action_finish_when_stopped(
    start: Launcher, client: Client, tmp_path: Path
) -> None:
    app = App.discover("cliapp", task_queue=f"cli-graceful-{uuid.uuid4().hex[:8]}")
    worker = await start("worker", "--app", "cliapp", "--task-queue", app.task_queue, "--crons", "")
    await worker.wait_output("worker serving")
    files = {name: tmp_path / name for name in ("started", "release", "finished")}
    await KitcnClient(client, app).scheduler.run_after(
        0, "files.wait_for_release", {name: str(path) for name, path in files.items()}
    )
    await wait_for(files["started"].exists)
    worker.process.send_signal(signal.SIGTERM)
    await wait_for(lambda: "stopping" in worker.err.read_text())
    files["release"].touch()
    assert await asyncio.wait_for(worker.process.wait(), 60) == 0
    assert files["finished"].exists()


async def test_dev_runs_a_server_in_dot_kitcn_serves_jobs_and_stops_it_on_sigint(
    start: Launcher, tmp_path: Path, app: App
) -> None:
    port = free_port()
    project = tmp_path / "project"
    project.mkdir()
    dev: Running = await start("dev", "--app", "testapp", "--port", str(port), cwd=project)
    shown = await dev.wait_output("worker serving", timeout=90)
    assert f"Temporal UI: http://127.0.0.1:{port + 1000}" in shown
    assert (project / ".kitcn" / "temporal.db").exists()
    dev_client = await connect(f"127.0.0.1:{port}", app)
    kitcn = KitcnClient(dev_client, app, task_queue="kitcn")
    job_id = await kitcn.scheduler.run_after(0, "targets.touch", {"token": token()})
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert server_processes(port)
    assert await dev.stop(signal.SIGINT) == 0
    assert server_processes(port) == [] and not port_open("127.0.0.1", port)  # the server went with it
    assert "Traceback" not in dev.err.read_text()


async def test_dev_reuses_a_server_already_listening(
    start: Launcher, temporal_server: DevServer, app: App, kitcn: KitcnClient, client: Client, tmp_path: Path
) -> None:
    queue = f"cli-dev-{uuid.uuid4().hex[:8]}"
    args: Sequence[str] = ["dev", "--app", "testapp", "--port", str(temporal_server.port), "--task-queue", queue]
    dev: Running = await start(*args, cwd=tmp_path)
    shown = await dev.wait_output("worker serving")
    assert f"reusing the Temporal server already listening on {temporal_server.address}" in shown
    other_queue = KitcnClient(client, app, task_queue=queue)
    job_id = await other_queue.scheduler.run_after(0, "targets.touch", {"token": token()})
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert await dev.stop(signal.SIGINT) == 0
    assert temporal_server.process.poll() is None and port_open(temporal_server.host, temporal_server.port)
    assert not (tmp_path / ".kitcn" / "temporal.db").exists()
