"""Small waits and lookups the tests share."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from kitcn_temporal import JOB_WORKFLOW, KitcnClient, ScheduledFunction
from kitcn_temporal.crons._schedules import describe_schedule as describe_schedule  # the schedule, or None
from testapp.probe import wait_for

FINAL = ("success", "failed", "canceled")


def token() -> str:
    return uuid.uuid4().hex


async def wait_state(kitcn: KitcnClient, job_id: str, *states: str, timeout: float = 30.0) -> ScheduledFunction:
    """The job once its state is one of ``states`` (default: any final state)."""
    wanted = states or FINAL

    async def reached() -> ScheduledFunction | None:
        job = await kitcn.system.get(job_id)
        return job if job is not None and job.state.kind in wanted else None

    result: ScheduledFunction = await wait_for(reached, timeout=timeout)
    return result


async def status_of(client: Client, job_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(job_id).describe()).status


async def settle_visibility(kitcn: KitcnClient, tok: str, name: str = "targets.touch") -> None:
    """Schedule a sentinel job (``name``, taking a token) and wait until visibility lists it:
    earlier writes are visible too."""
    sentinel = await kitcn.scheduler.run_after(0, name, {"token": f"{tok}:sentinel"})

    async def listed() -> bool:
        rows = await kitcn.system.list(name=name, limit=200)
        return any(r.id == sentinel for r in rows)

    await wait_for(listed)


async def executions_besides_jobs(kitcn: KitcnClient, tok: str, name: str = "targets.touch") -> int:
    """How many workflow executions on the client's task queue are not jobs (direct-call
    workflows, commit guards), once visibility has caught up with everything before."""
    await settle_visibility(kitcn, tok, name)
    query = f"TaskQueue = '{kitcn.task_queue}' AND WorkflowType != '{JOB_WORKFLOW}'"
    return (await kitcn.client.count_workflows(query)).count


async def waiting_row(kitcn: KitcnClient, job_id: str) -> ScheduledFunction:
    """The row of job ``job_id`` once it says why the job waits (``waiting``)."""

    async def found() -> ScheduledFunction | None:
        job = await kitcn.system.get(job_id)
        return job if job is not None and job.waiting else None

    row: ScheduledFunction = await wait_for(found, timeout=30)
    return row


def jobs_with_token(rows: list[ScheduledFunction], tok: str) -> list[ScheduledFunction]:
    return [r for r in rows if r.args.get("token") == tok]


WORKER_PROCESS = Path(__file__).resolve().parent / "workerproc.py"


def workerproc(address: str, app: str, queue: str, *options: str) -> subprocess.Popen[bytes]:
    """``workerproc.py`` for test app ``app`` in its own process (to be killed), not waited for:
    with ``--call NAME --args JSON`` it makes one direct call instead of serving ``queue``."""
    return subprocess.Popen(
        [sys.executable, str(WORKER_PROCESS), "--app", app, "--address", address, "--queue", queue, *options],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def worker_process(address: str, app: str, queue: str, *options: str) -> subprocess.Popen[bytes]:
    """A worker for test app ``app`` in its own process (to be killed), once it polls ``queue``.

    ``options``: more ``workerproc.py`` flags (``--database URL``, ``--kill-after-token T``).
    """
    proc = workerproc(address, app, queue, *options)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"ready"):
        proc.kill()
        proc.wait()
        raise AssertionError(f"the worker process did not start: {line!r}")
    return proc


async def scrape(port: int) -> str:
    """The Prometheus text served on ``127.0.0.1:port/metrics``."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    return await asyncio.to_thread(get)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of metric ``name``'s samples in Prometheus ``text`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        metric, brace, rest = line.partition("{")
        if metric != name or not brace:
            continue
        inside, _, value = rest.rpartition("}")
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', inside))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total
