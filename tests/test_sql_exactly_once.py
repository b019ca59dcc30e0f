"""Exactly-once mutations through ``ctx.db``: a real dev server, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker

from helpers import describe_schedule, status_of, token, wait_state, worker_process
from kitcn_temporal import CRPCError, KitcnClient, create_caller
from kitcn_temporal.ops._devserver import DevServer
from kitcn_temporal.sql._schema import executions
from sqlbackend import Backend, sql_backend
from testapp.probe import RUNS
from testapp_sql import notes
from testapp_sql.databases import BACKENDS
from testapp_sql.models import Counter, Mark, Note


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, temporal_server: DevServer, client: Client, tmp_path_factory: Any
) -> AsyncIterator[Backend]:
    # ``client`` has set the namespace up (search attributes) for every job started here.
    async with sql_backend(request.param, temporal_server.address, tmp_path_factory.mktemp("sqlapp")) as backend:
        yield backend


async def test_a_mutations_writes_schedules_and_record_commit_together(backend: Backend) -> None:
    tok = token()
    job_id = await create_caller(backend.kitcn, notes).schedule.now.add_note(token=tok)
    assert (await wait_state(backend.kitcn, job_id)).state.kind == "success"
    output = await backend.client.get_workflow_handle(job_id).result()
    assert (await wait_state(backend.kitcn, output["mark_job"])).state.kind == "success"
    async with backend.store.engine.connect() as conn:
        record = (await conn.execute(select(executions).where(executions.c.exec_id == job_id))).one()
    assert record.name == "notes.add_note"
    assert json.loads(record.output) == output
    assert [i["id"] for i in json.loads(record.intents)] == [output["mark_job"]]
    assert len(await backend.rows(Note, tok)) == 1
    assert [m.job_id for m in await backend.rows(Mark, tok)] == [output["mark_job"]]


@asynccontextmanager
async def doomed_worker(backend: Backend, server: DevServer, kill_token: str) -> AsyncIterator[tuple[KitcnClient, Any]]:
    """A worker process on a task queue of its own that dies (SIGKILL) right after the commit
    of a mutation whose output carries ``kill_token``, before reporting it to Temporal: as on
    a power cut. Yields a client for that queue and the process."""
    queue = f"kitcn-sql-doomed-{token()[:8]}"
    proc = worker_process(
        server.address, "testapp_sql", queue, "--database", backend.url, "--kill-after-token", kill_token
    )
    try:
        yield KitcnClient(backend.client, backend.app, task_queue=queue), proc
    finally:
        proc.kill()
        proc.wait()


async def test_a_worker_killed_between_commit_and_report_runs_the_mutation_once(
    backend: Backend, temporal_server: DevServer
) -> None:
    tok = token()
    async with doomed_worker(backend, temporal_server, tok) as (doomed, proc):
        job_id = await create_caller(doomed, notes).schedule.now.add_note(token=tok)
        assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL
        assert len(await backend.rows(Note, tok)) == 1  # committed before the worker died
        assert await status_of(backend.client, job_id) == WorkflowExecutionStatus.RUNNING
        await restarted_worker_runs_it_once(backend, doomed, job_id, tok)


async def test_a_canceled_mutation_job_whose_attempt_committed_before_its_worker_died_ends_success(
    backend: Backend, temporal_server: DevServer
) -> None:
    """docs/semantics.md §3, cancel: the committed attempt stands, and its jobs start."""
    tok = token()
    async with doomed_worker(backend, temporal_server, tok) as (doomed, proc):
        job_id = await create_caller(doomed, notes).schedule.now.add_note(token=tok)
        assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL
        await doomed.scheduler.cancel(job_id)  # before any worker knows the attempt committed
        await restarted_worker_runs_it_once(backend, doomed, job_id, tok)


async def restarted_worker_runs_it_once(backend: Backend, doomed: KitcnClient, job_id: str, tok: str) -> None:
    """A restarted worker on the doomed queue takes the ``add_note`` job over: it ends
    ``success`` without running the handler again (one note) and its mark job starts once."""
    async with Worker(backend.client, task_queue=doomed.task_queue):
        job = await wait_state(doomed, job_id, timeout=60)
        output = await backend.client.get_workflow_handle(job_id).result()
        mark = await wait_state(doomed, output["mark_job"])
    assert job.state.kind == "success"
    assert mark.state.kind == "success"
    assert len(await backend.rows(Note, tok)) == 1
    assert [m.job_id for m in await backend.rows(Mark, tok)] == [output["mark_job"]]


async def test_a_completion_callback_runs_once_when_its_worker_dies_right_after_it_commits(
    backend: Backend, temporal_server: DevServer
) -> None:
    """docs/semantics.md §12: the callback is a step of the job's workflow, exactly once with the store."""
    tok = token()
    async with doomed_worker(backend, temporal_server, f"done:{tok}") as (doomed, proc):
        schedule = create_caller(doomed, notes).schedule.options(on_complete=notes.note_completed)
        job_id = await schedule.now.add_note(token=tok)
        assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL  # right after the callback's commit
        assert len(await backend.rows(Mark, f"done:{tok}")) == 1
        async with Worker(backend.client, task_queue=doomed.task_queue):
            await backend.client.get_workflow_handle(job_id).result()
    assert (await doomed.system.get(job_id)).state.kind == "success"  # type: ignore[union-attr]
    assert len(await backend.rows(Mark, f"done:{tok}")) == 1
    assert len(await backend.rows(Note, tok)) == 1


async def test_a_runtime_cron_registered_by_a_mutation_whose_worker_dies_after_the_commit_is_created_once(
    backend: Backend, temporal_server: DevServer
) -> None:
    """docs/semantics.md §12: a mutation's cron changes are recorded with it and applied after its retry."""
    tok = token()
    name = f"note cron {tok[:8]}"
    try:
        async with doomed_worker(backend, temporal_server, tok) as (doomed, proc):
            job_id = await create_caller(doomed, notes).schedule.now.add_note_with_cron(token=tok, cron=name)
            assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL  # committed, the cron not yet created
            assert await describe_schedule(backend.client, f"kitcn-cron:{name}") is None
            async with Worker(backend.client, task_queue=doomed.task_queue):
                job = await wait_state(doomed, job_id, timeout=60)
            desc = await describe_schedule(backend.client, f"kitcn-cron:{name}")
    finally:
        with contextlib.suppress(RPCError):
            await backend.client.get_schedule_handle(f"kitcn-cron:{name}").delete()
    assert job.state.kind == "success"
    assert len(await backend.rows(Note, tok)) == 1  # the handler ran once: the retry found its record
    assert desc is not None and desc.schedule.action.task_queue == doomed.task_queue  # type: ignore[attr-defined]
    assert (await desc.memo())["kitcnCron"] == {"app": doomed.task_queue, "origin": "runtime"}


async def test_a_mutation_that_raises_commits_nothing_and_schedules_nothing(backend: Backend) -> None:
    tok = token()
    with pytest.raises(CRPCError) as caught:
        await create_caller(backend.kitcn, notes).add_note_then_fail(token=tok)
    assert caught.value.code == "CONFLICT"
    # The in-process add_note shared the failed transaction: its note and its job are gone.
    assert await backend.rows(Note, tok) == []
    assert await backend.kitcn.system.get(caught.value.data["mark_job"]) is None


async def test_a_mutation_called_from_an_action_commits_on_its_own(backend: Backend) -> None:
    tok = token()
    with pytest.raises(CRPCError) as caught:
        await create_caller(backend.kitcn, notes).actions.add_note_then_fail_action(token=tok)
    assert caught.value.code == "CONFLICT"
    assert (await wait_state(backend.kitcn, caught.value.data["mark_job"])).state.kind == "success"
    assert len(await backend.rows(Note, tok)) == 1


async def test_a_query_reads_through_a_read_only_session(backend: Backend) -> None:
    tok = token()
    caller = create_caller(backend.kitcn, notes)
    await caller.add_note(token=tok)
    assert await caller.count_notes(token=tok) == 1
    with pytest.raises(CRPCError, match=r"read-only|readonly"):
        await caller.write_in_query(token=tok)
    assert await caller.count_notes(token=tok) == 1


async def test_an_action_has_no_db(backend: Backend) -> None:
    with pytest.raises(CRPCError, match=r"an action has no ctx\.db"):
        await create_caller(backend.kitcn, notes).actions.touch_db_in_action(token=token())


async def overlapping_increments(backend: Backend, increment: Any) -> tuple[list[int], list[int], int]:
    """Two increments of one new counter whose first attempts both read before either writes:
    their outputs, the values their attempts read, and the counter's final value."""
    tok, counter = token(), token()
    await create_caller(backend.kitcn, notes).create_counter(counter_id=counter, token=tok)
    results = await asyncio.gather(*(increment(counter_id=counter, token=tok) for _ in range(2)))
    async with backend.store.engine.connect() as conn:
        final = await conn.scalar(select(Counter.value).where(Counter.id == counter))
    return sorted(results), sorted(RUNS[tok]), final


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_concurrent_mutations_on_one_row_conflict_retry_and_both_count(backend: Backend) -> None:
    caller = create_caller(backend.kitcn, notes)
    results, reads, final = await overlapping_increments(backend, caller.increment)
    assert results == [1, 2]
    # Both first attempts read 0; SERIALIZABLE refused one, whose retry read 1.
    assert reads == [0, 0, 1]
    assert final == 2


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_conflicting_mutation_called_from_an_action_is_retried_in_the_action(backend: Backend) -> None:
    caller = create_caller(backend.kitcn, notes)
    results, reads, final = await overlapping_increments(backend, caller.actions.increment_from_action)
    # Actions run once: the refused mutation was retried inside its action.
    assert results == [1, 2]
    assert reads == [0, 0, 1]
    assert final == 2
