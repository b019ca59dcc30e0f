"""docs/semantics.md §17: once ``cancel(id)`` has returned, ``get(id)`` of a job that had not
started says ``canceled`` at once, from every path that cancels, as in Convex.

The canceled jobs run on a task queue no worker polls while the test reads them: nothing can
record their state, so what ``get`` says comes from the cancel request alone. A worker then
serves that queue, and each job ends ``canceled`` without running.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from helpers import jobs_with_token, status_of, token, wait_state
from kitcn_temporal import App, KitcnClient, create_caller
from kitcn_temporal.ops._devserver import DevServer
from sqlbackend import Backend, sql_backend
from testapp import producers, targets
from testapp.probe import RUNS, gate, wait_for
from testapp_sql import notes
from testapp_sql.databases import BACKENDS

Cancel = Callable[[KitcnClient, str], Awaitable[Any]]


async def _from_a_client(kitcn: KitcnClient, job_id: str) -> None:
    await create_caller(kitcn, targets).schedule.cancel(job_id)


async def _from_an_action(kitcn: KitcnClient, job_id: str) -> None:
    await create_caller(kitcn, producers).actions.cancel_it_action(token=token(), job_id=job_id)


async def _from_a_mutation_job(kitcn: KitcnClient, job_id: str) -> None:
    canceler = await create_caller(kitcn, producers).schedule.now.cancel_it(token=token(), job_id=job_id)
    assert (await wait_state(kitcn, canceler)).state.kind == "success"  # it has committed


async def _from_a_direct_mutation(kitcn: KitcnClient, job_id: str) -> None:
    await create_caller(kitcn, producers).cancel_it(token=token(), job_id=job_id)


PATHS: dict[str, Cancel] = {
    "client": _from_a_client,
    "action": _from_an_action,
    "mutation job": _from_a_mutation_job,
    "direct mutation": _from_a_direct_mutation,
}


@pytest.fixture
def idle_queue(app: App) -> str:
    """A task queue no worker polls (until the test starts one)."""
    return f"{app.task_queue}-idle-{uuid.uuid4().hex[:6]}"


async def _ends_canceled_without_running(client: Client, kitcn: KitcnClient, queue: str, *job_ids: str) -> None:
    async with Worker(client, task_queue=queue):
        for job_id in job_ids:
            assert (await wait_state(kitcn, job_id)).state.kind == "canceled"
            await wait_for(lambda job_id=job_id: _closed(client, job_id))
            assert await status_of(client, job_id) == WorkflowExecutionStatus.CANCELED


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("target", ["touch", "touch_action"])
async def test_a_canceled_job_that_had_not_started_reads_canceled_at_once(
    kitcn: KitcnClient, client: Client, idle_queue: str, path: str, target: str
) -> None:
    tok = token()
    waiting = KitcnClient(client, kitcn.app, task_queue=idle_queue)
    later = await waiting.scheduler.run_after(3_600_000, f"targets.{target}", {"token": tok})
    due = await waiting.scheduler.run_after(0, f"targets.{target}", {"token": tok})
    for job_id in (later, due):
        await PATHS[path](kitcn, job_id)
        job = await kitcn.system.get(job_id)
        assert job is not None and job.state.kind == "canceled", job
        assert job.completed_time is not None and job.waiting is None
    await _ends_canceled_without_running(client, kitcn, idle_queue, later, due)
    assert RUNS[tok] == []


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, temporal_server: DevServer, client: Client, tmp_path_factory: Any
) -> AsyncIterator[Backend]:
    async with sql_backend(request.param, temporal_server.address, tmp_path_factory.mktemp("cancelapp")) as b:
        yield b


async def test_a_direct_mutation_with_the_sql_store_reads_canceled_once_it_has_committed(
    backend: Backend, idle_queue: str
) -> None:
    tok = token()
    waiting = KitcnClient(backend.client, backend.app, task_queue=idle_queue)
    job_id = await waiting.scheduler.run_after(3_600_000, "notes.mark", {"token": tok})
    await create_caller(backend.kitcn, notes).add_note_and_cancel(token=tok, job_id=job_id)
    job = await backend.kitcn.system.get(job_id)
    assert job is not None and job.state.kind == "canceled", job
    await _ends_canceled_without_running(backend.client, backend.kitcn, idle_queue, job_id)


async def test_list_shows_the_cancel_within_visibilitys_lag(
    kitcn: KitcnClient, client: Client, idle_queue: str
) -> None:
    tok = token()
    waiting = KitcnClient(client, kitcn.app, task_queue=idle_queue)
    job_id = await waiting.scheduler.run_after(3_600_000, "targets.touch", {"token": tok})
    await kitcn.scheduler.cancel(job_id)
    async with Worker(client, task_queue=idle_queue):

        async def listed_canceled() -> bool:
            rows = jobs_with_token(await kitcn.system.list(state="canceled", name="targets.touch", limit=500), tok)
            return [r.id for r in rows] == [job_id]

        await wait_for(listed_canceled, timeout=10)


async def test_a_running_mutation_is_not_read_canceled_before_its_outcome(kitcn: KitcnClient) -> None:
    """A cancel request that finds the procedure started does not make the row ``canceled``:
    the attempt under way decides (it commits, or hears of the cancel and rolls back)."""
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, "targets.held_mutation", {"token": tok})
    await wait_for(lambda: RUNS[tok] == ["started"])
    await kitcn.scheduler.cancel(job_id)
    assert (await kitcn.system.get(job_id)).state.kind == "pending"
    gate(tok).set()
    assert (await wait_state(kitcn, job_id)).state.kind in ("success", "canceled")


async def test_a_running_action_is_not_read_canceled(kitcn: KitcnClient, client: Client) -> None:
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, "table.outcome", {"token": tok, "outcome": "hold"})
    await wait_state(kitcn, job_id, "inProgress")
    await kitcn.scheduler.cancel(job_id)
    assert (await kitcn.system.get(job_id)).state.kind == "inProgress"
    gate(tok).set()
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def _closed(client: Client, job_id: str) -> bool:
    return await status_of(client, job_id) != WorkflowExecutionStatus.RUNNING
