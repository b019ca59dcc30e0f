"""docs/semantics.md §7 and §9: a direct mutation with the SQL store, its schedules exactly once.

It runs in the caller's process; when it schedules, a commit guard (``kitcn.CommitGuard``)
armed before its commit starts the recorded jobs if the process dies after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from helpers import describe_schedule, executions_besides_jobs, token, wait_state, workerproc
from kitcn_temporal import CRPCError, create_caller
from kitcn_temporal.execution._direct import GUARD_ARMED_TEST_HOOKS, recover_commit
from kitcn_temporal.jobs._handles import Jobs
from kitcn_temporal.ops._devserver import DevServer
from kitcn_temporal.sql._schema import ABANDONED, executions
from sqlbackend import Backend, sql_backend
from testapp.probe import RUNS
from testapp_sql import notes
from testapp_sql.databases import BACKENDS
from testapp_sql.models import Mark, Note

#: Short, so that a guard left behind by a dead producer fires within the test.
GUARD_DELAY = timedelta(seconds=2)


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, temporal_server: DevServer, client: Client, tmp_path_factory: Any
) -> AsyncIterator[Backend]:
    # ``client`` has set the namespace up (search attributes) for every job started here.
    directory = tmp_path_factory.mktemp("guardapp")
    async with sql_backend(request.param, temporal_server.address, directory, commit_guard_delay=GUARD_DELAY) as b:
        yield b


@pytest.fixture
def armed() -> Iterator[list[str]]:
    """The execution ids of the commit guards armed while the test runs."""
    ids: list[str] = []

    async def note(exec_id: str) -> None:
        ids.append(exec_id)

    GUARD_ARMED_TEST_HOOKS.append(note)
    yield ids
    GUARD_ARMED_TEST_HOOKS.remove(note)


async def guard_status(client: Client, exec_id: str) -> WorkflowExecutionStatus | None:
    """The guard's status, or ``None`` once it is deleted."""
    try:
        return (await client.get_workflow_handle(exec_id).describe()).status
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def record_of(backend: Backend, exec_id: str) -> Any:
    """The row of ``kitcn_executions`` for ``exec_id``."""
    async with backend.store.engine.connect() as conn:
        return (await conn.execute(select(executions).where(executions.c.exec_id == exec_id))).one()


async def marks(backend: Backend, tok: str) -> list[str]:
    return sorted(m.job_id for m in await backend.rows(Mark, tok))


async def killed_after_commit(backend: Backend, temporal_server: DevServer, name: str, args: dict[str, Any]) -> str:
    """Run a direct call of ``name`` in a producer process SIGKILLed right after its commit
    (its output carries ``args["token"]``); returns the call's execution id."""
    call = ["--call", name, "--args", json.dumps(args)]
    proc = workerproc(
        temporal_server.address, "testapp_sql", backend.app.task_queue, "--database", backend.url,
        "--guard-delay", str(GUARD_DELAY.total_seconds()), "--kill-after-token", args["token"], *call,
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    return proc.stdout.read().decode().split("dying after ", 1)[1].strip()


async def test_a_schedule_free_direct_mutation_creates_no_workflow_execution(
    backend: Backend, armed: list[str]
) -> None:
    tok = token()
    before = await executions_besides_jobs(backend.kitcn, tok, "notes.mark")
    assert await create_caller(backend.kitcn, notes).write_note(token=tok) == 1
    assert await create_caller(backend.kitcn, notes).count_notes(token=tok) == 1
    assert await executions_besides_jobs(backend.kitcn, f"{tok}:after", "notes.mark") == before
    assert armed == []


async def test_a_direct_mutation_starts_its_jobs_once_and_deletes_its_guard(backend: Backend, armed: list[str]) -> None:
    tok = token()
    out = await create_caller(backend.kitcn, notes).add_note_and_marks(token=tok, count=3)
    [exec_id] = armed
    for job_id in out.mark_jobs:
        assert await backend.kitcn.system.get(job_id) is not None  # started before the call returned
    assert await guard_status(backend.client, exec_id) is None  # released: not even listed
    for job_id in out.mark_jobs:
        assert (await wait_state(backend.kitcn, job_id)).state.kind == "success"
    assert await marks(backend, tok) == sorted(out.mark_jobs)
    # Had the guard fired anyway, it would find every job started.
    assert await recover_commit(backend.app, Jobs(backend.client, backend.app.task_queue), exec_id) == 0


async def test_a_direct_mutation_that_schedules_three_then_raises_schedules_none(
    backend: Backend, armed: list[str]
) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await create_caller(backend.kitcn, notes).marks_then_raise(token=tok, count=3)
    assert (err.value.code, err.value.message) == ("INTERNAL_SERVER_ERROR", "RuntimeError: changed my mind")
    assert len(RUNS[tok]) == 3
    for job_id in RUNS[tok]:
        assert await backend.kitcn.system.get(job_id) is None
    assert await backend.rows(Note, tok) == []
    assert armed == []  # it never came near a commit


async def test_a_producer_killed_right_after_its_commit_has_its_jobs_started_once_by_the_guard(
    backend: Backend, temporal_server: DevServer
) -> None:
    tok = token()
    exec_id = await killed_after_commit(
        backend, temporal_server, "notes.add_note_and_marks", {"token": tok, "count": 3}
    )
    job_ids = sorted(i["id"] for i in json.loads((await record_of(backend, exec_id)).intents))
    assert len(job_ids) == 3 and len(await backend.rows(Note, tok)) == 1  # committed, then killed
    # The worker of this test runs the guard once its delay is over: it starts all three.
    assert await backend.client.get_workflow_handle(exec_id).result() == 3
    for job_id in job_ids:
        assert (await wait_state(backend.kitcn, job_id)).state.kind == "success"
    assert await marks(backend, tok) == job_ids


async def test_a_producer_killed_right_after_registering_a_cron_has_it_created_by_the_guard(
    backend: Backend, temporal_server: DevServer
) -> None:
    """docs/semantics.md §12: a direct mutation's runtime cron change is exactly once too."""
    tok = token()
    schedule_id = f"kitcn-cron:guarded {tok[:8]}"
    try:
        args = {"token": tok, "cron": schedule_id.removeprefix("kitcn-cron:")}
        exec_id = await killed_after_commit(backend, temporal_server, "notes.add_note_with_cron", args)
        assert await describe_schedule(backend.client, schedule_id) is None  # committed, then killed
        # The worker of this test runs the guard once its delay is over: it registers the cron.
        assert await backend.client.get_workflow_handle(exec_id).result() == 0  # no job to start
        desc = await describe_schedule(backend.client, schedule_id)
    finally:
        with contextlib.suppress(RPCError):
            await backend.client.get_schedule_handle(schedule_id).delete()
    assert desc is not None and (await desc.memo())["kitcnCron"] == {"app": backend.app.name, "origin": "runtime"}
    assert len(await backend.rows(Note, tok)) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_commit_slower_than_its_guard_fails_and_schedules_nothing(backend: Backend) -> None:
    """The guard fires before the commit, finds no record and leaves a tombstone: the late
    commit fails on the record's key and its retry reads the tombstone as a refusal.

    (On SQLite this race cannot happen: the guard's write waits for the mutation's lock.)
    """
    tok, fired = token(), {}

    async def hold_until_fired(exec_id: str) -> None:
        fired[exec_id] = await backend.client.get_workflow_handle(exec_id).result()

    GUARD_ARMED_TEST_HOOKS.append(hold_until_fired)
    try:
        with pytest.raises(CRPCError) as err:
            await create_caller(backend.kitcn, notes).add_note_and_marks(token=tok, count=3)
    finally:
        GUARD_ARMED_TEST_HOOKS.remove(hold_until_fired)
    [(exec_id, started)] = fired.items()
    assert started == 0  # the guard found nothing to start
    assert err.value.code == "TIMEOUT" and "did not commit before its commit guard fired" in err.value.message
    assert await backend.rows(Note, tok) == []
    for job_id in RUNS[tok]:
        assert await backend.kitcn.system.get(job_id) is None
    assert (await record_of(backend, exec_id)).name == ABANDONED


async def test_a_guard_that_finds_no_record_makes_sure_the_call_never_commits(backend: Backend) -> None:
    jobs = Jobs(backend.client, backend.app.task_queue)
    exec_id = f"kitcn-call:never-{token()}"
    assert await recover_commit(backend.app, jobs, exec_id) == 0
    assert await recover_commit(backend.app, jobs, exec_id) == 0  # a retried guard: the same
    assert (await record_of(backend, exec_id)).name == ABANDONED
