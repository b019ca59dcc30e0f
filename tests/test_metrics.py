"""docs/semantics.md §13, metrics: Prometheus text from a running worker, the SDK's metrics and the jobs'."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from clihelpers import Launcher
from conftest import make_app
from helpers import metric_value, scrape, token, wait_state
from kitcn_temporal import KitcnClient, KitcnPlugin, metrics_runtime
from kitcn_temporal.ops._devserver import DevServer, free_port
from testapp.probe import wait_for

SCHEDULED = "kitcn_jobs_scheduled_total"
FINISHED = "kitcn_jobs_finished_total"
LATENESS = "kitcn_job_start_lateness_seconds"


@pytest.fixture
async def start(temporal_server: DevServer, tmp_path: Path) -> AsyncIterator[Launcher]:
    launcher = Launcher(temporal_server.address, tmp_path)
    yield launcher
    await launcher.kill_all()


async def test_metrics_runtime_serves_the_sdk_metrics_and_the_jobs_counters(temporal_server: DevServer) -> None:
    port = free_port()
    app = make_app()
    client = await Client.connect(temporal_server.address, runtime=metrics_runtime(port), plugins=[KitcnPlugin(app)])
    kitcn = KitcnClient(client, app)
    tok = token()
    async with Worker(client, task_queue=app.task_queue):
        done = [await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok}) for _ in range(2)]
        done.append(await kitcn.scheduler.run_after(1500, "targets.touch", {"token": tok}))
        done.append(await kitcn.scheduler.run_after(0, "targets.developer_error", {"token": tok}))
        pending = await kitcn.scheduler.run_after(600_000, "targets.touch", {"token": tok})
        await kitcn.scheduler.cancel(pending)
        for job_id in [*done, pending]:
            await wait_state(kitcn, job_id)

        async def finished() -> str | None:
            text = await scrape(port)
            return text if metric_value(text, FINISHED) >= 5 else None

        text = await wait_for(finished, timeout=20)
    queue = {"task_queue": app.task_queue}
    assert metric_value(text, SCHEDULED, function="targets.touch", **queue) == 4
    assert metric_value(text, SCHEDULED, function="targets.developer_error", **queue) == 1
    assert metric_value(text, FINISHED, function="targets.touch", state="success", **queue) == 3
    assert metric_value(text, FINISHED, function="targets.touch", state="canceled", **queue) == 1
    assert metric_value(text, FINISHED, function="targets.developer_error", state="failed", **queue) == 1
    # Three touches ran (the canceled one never started), each well within 5 s of its due time.
    assert metric_value(text, f"{LATENESS}_count", function="targets.touch", **queue) == 3
    assert metric_value(text, f"{LATENESS}_bucket", function="targets.touch", le="5", **queue) == 3
    assert metric_value(text, "temporal_workflow_completed", workflow_type="kitcn.ScheduledFunction", **queue) >= 3


async def test_worker_command_serves_metrics_of_the_jobs_it_ran(
    start: Launcher, client: Client, kitcn: KitcnClient
) -> None:
    port, queue = free_port(), f"kitcn-metrics-{uuid.uuid4().hex[:8]}"
    worker = await start(
        "worker", "--app", "testapp", "--task-queue", queue, "--crons", "", "--metrics-port", str(port)
    )
    banner = await worker.wait_output("worker serving")
    assert f"metrics: http://0.0.0.0:{port}/metrics" in banner
    producer = KitcnClient(client, kitcn.app, task_queue=queue)
    tok = token()
    parent = await producer.scheduler.run_after(0, "producers.schedule_three_flaky", {"token": tok})
    await wait_state(producer, parent, "success")

    async def scraped() -> str | None:
        text = await scrape(port)
        return text if metric_value(text, FINISHED, function="targets.touch") >= 3 else None

    text = await wait_for(scraped, timeout=30)
    # The worker started the mutation's three jobs (the parent was started by this process).
    assert metric_value(text, SCHEDULED, function="targets.touch", task_queue=queue) == 3
    assert metric_value(text, SCHEDULED, function="producers.schedule_three_flaky") == 0
    assert metric_value(text, FINISHED, function="producers.schedule_three_flaky", state="success") == 1
    assert metric_value(text, FINISHED, function="targets.touch", state="success", task_queue=queue) == 3
    assert metric_value(text, f"{LATENESS}_count", task_queue=queue) == 4
    assert metric_value(text, "temporal_worker_task_slots_available", task_queue=queue) > 0


async def test_worker_command_takes_its_slot_counts_from_the_command_line(start: Launcher) -> None:
    """docs/semantics.md §7-§8: the worker's slots as given; Temporal's own gauge reads them."""
    port, queue = free_port(), f"kitcn-slots-{uuid.uuid4().hex[:8]}"
    slots = ("--max-workflow-tasks", "6", "--max-activities", "4", "--max-local-activities", "3")
    worker = await start(
        "worker", "--app", "testapp", "--task-queue", queue, "--crons", "", "--metrics-port", str(port), *slots
    )
    await worker.wait_output("worker serving")
    available = "temporal_worker_task_slots_available"

    async def scraped() -> str | None:
        text = await scrape(port)
        return text if f'task_queue="{queue}",worker_type="WorkflowWorker"' in text else None

    text = await wait_for(scraped, timeout=30)
    assert metric_value(text, available, task_queue=queue, worker_type="WorkflowWorker") == 6
    assert metric_value(text, available, task_queue=queue, worker_type="ActivityWorker") == 4
    assert metric_value(text, available, task_queue=queue, worker_type="LocalActivityWorker") == 3


async def test_a_worker_without_slot_options_has_twice_the_local_activity_slots_for_workflow_tasks(
    start: Launcher,
) -> None:
    port, queue = free_port(), f"kitcn-slots-{uuid.uuid4().hex[:8]}"
    worker = await start(
        "worker", "--app", "testapp", "--task-queue", queue, "--crons", "", "--metrics-port", str(port)
    )
    await worker.wait_output("worker serving")

    async def scraped() -> str | None:
        text = await scrape(port)
        return text if f'task_queue="{queue}",worker_type="LocalActivityWorker"' in text else None

    text = await wait_for(scraped, timeout=30)
    available = "temporal_worker_task_slots_available"
    local = metric_value(text, available, task_queue=queue, worker_type="LocalActivityWorker")
    assert local == 100
    assert metric_value(text, available, task_queue=queue, worker_type="WorkflowWorker") == 2 * local
