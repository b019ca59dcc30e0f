"""docs/semantics.md §4, deploys: jobs scheduled under one version of an app, run by workers of
the next (real worker processes, a real server).

``deployapp_v1`` is the app the jobs were scheduled with; ``deployapp_v2`` removed
``deploy.removed``, renamed ``deploy.old_name`` and changed the kind of two procedures.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from helpers import status_of, token, wait_state, waiting_row, worker_process
from kitcn_temporal import App, KitcnClient
from kitcn_temporal.ops._devserver import DevServer
from testapp.ledger import lines
from testapp.probe import wait_for

#: The grace period of the version-2 workers (the default is 10 minutes).
GRACE_S = "3"


@pytest.fixture
def queue() -> str:
    return f"kitcn-deploy-{token()[:8]}"


@pytest.fixture
def producer(client: Client, queue: str) -> KitcnClient:
    """Schedules with version 1's definitions; no version-1 worker runs unless a test starts one."""
    return KitcnClient(client, App.discover("deployapp_v1", task_queue=queue))


@pytest.fixture
def workers(temporal_server: DevServer, queue: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start_worker(
    server: DevServer, workers: list[subprocess.Popen[bytes]], app: str, queue: str, grace: str = GRACE_S
) -> subprocess.Popen[bytes]:
    proc = worker_process(server.address, app, queue, "--unknown-grace", grace)
    workers.append(proc)
    return proc


@pytest.mark.parametrize("procedure", ["deploy.removed", "deploy.old_name"])
async def test_a_job_whose_procedure_a_deploy_removed_or_renamed_fails_after_the_grace_period_naming_it(
    temporal_server: DevServer, producer: KitcnClient, workers: list, queue: str, tmp_path: Path, procedure: str
) -> None:
    ledger = tmp_path / "ledger"
    job_id = await producer.scheduler.run_after(0, procedure, {"ledger": str(ledger)})
    start_worker(temporal_server, workers, "deployapp_v2", queue)
    waiting = await waiting_row(producer, job_id)
    assert waiting.state.kind == "pending"
    assert procedure in (waiting.waiting or "") and "waiting until" in (waiting.waiting or "")
    job = await wait_state(producer, job_id, timeout=30)
    assert job.state.kind == "failed"
    assert f"no worker serving task queue {queue!r} knows procedure {procedure!r}" in (job.state.error or "")
    assert "removed or renamed" in (job.state.error or "") and "waited 3s" in (job.state.error or "")
    assert job.waiting is None
    assert await status_of(producer.client, job_id) == WorkflowExecutionStatus.FAILED
    assert lines(ledger) == []


async def test_a_cancel_ends_a_job_waiting_for_a_worker_that_knows_its_procedure_at_once(
    temporal_server: DevServer, producer: KitcnClient, workers: list, queue: str, tmp_path: Path
) -> None:
    job_id = await producer.scheduler.run_after(0, "deploy.removed", {"ledger": str(tmp_path / "ledger")})
    start_worker(temporal_server, workers, "deployapp_v2", queue, grace="600")
    await waiting_row(producer, job_id)
    await producer.scheduler.cancel(job_id)
    job = await wait_state(producer, job_id, timeout=10)
    assert job.state.kind == "canceled"
    assert await status_of(producer.client, job_id) == WorkflowExecutionStatus.CANCELED


async def test_a_worker_that_knows_the_procedure_again_within_the_grace_period_runs_the_job(
    temporal_server: DevServer, producer: KitcnClient, workers: list, queue: str, tmp_path: Path
) -> None:
    """A deploy rolled back within the grace period: the waiting job runs on the restored version."""
    ledger = tmp_path / "ledger"
    job_id = await producer.scheduler.run_after(0, "deploy.removed", {"ledger": str(ledger)})
    new = start_worker(temporal_server, workers, "deployapp_v2", queue, grace="600")
    await waiting_row(producer, job_id)
    start_worker(temporal_server, workers, "deployapp_v1", queue)
    new.send_signal(signal.SIGTERM)
    await asyncio.to_thread(new.wait)
    job = await wait_state(producer, job_id, timeout=60)
    assert job.state.kind == "success"
    assert job.waiting is None
    assert lines(ledger) == ["mutation removed"]


async def test_a_mutation_that_became_an_action_runs_at_most_once_when_its_worker_dies(
    temporal_server: DevServer, producer: KitcnClient, workers: list, queue: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    # Scheduled as a mutation (retried without limit); version 2 made it an action.
    job_id = await producer.scheduler.run_after(
        0, "deploy.becomes_action", {"ledger": str(ledger), "release": str(tmp_path / "never")}
    )
    first = start_worker(temporal_server, workers, "deployapp_v2", queue)
    await wait_for(lambda: lines(ledger) == ["action becomes_action"], timeout=30)
    assert (await producer.system.get(job_id)).state.kind == "inProgress"  # type: ignore[union-attr]
    first.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.wait)
    start_worker(temporal_server, workers, "deployapp_v2", queue)
    job = await wait_state(producer, job_id, timeout=60)
    assert job.state.kind == "failed"
    assert "transient error while executing action deploy.becomes_action" in (job.state.error or "")
    assert lines(ledger) == ["action becomes_action"]


async def test_a_job_runs_under_the_kind_its_procedure_has_now(
    temporal_server: DevServer, producer: KitcnClient, workers: list, queue: str, tmp_path: Path
) -> None:
    to_action, to_mutation = tmp_path / "to-action", tmp_path / "to-mutation"
    became_action = await producer.scheduler.run_after(0, "deploy.becomes_action", {"ledger": str(to_action)})
    became_mutation = await producer.scheduler.run_after(0, "deploy.becomes_mutation", {"ledger": str(to_mutation)})
    start_worker(temporal_server, workers, "deployapp_v2", queue)
    for job_id in (became_action, became_mutation):
        assert (await wait_state(producer, job_id, timeout=30)).state.kind == "success"
    assert lines(to_action) == ["action becomes_action"]
    assert lines(to_mutation) == ["mutation becomes_mutation"]
