"""The measurements. Each returns plain numbers; ``__main__`` repeats, takes medians and prints."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.app import work
from bench.raw import RawJob
from bench.tuned import start_tuned
from kitcn_temporal import KitcnClient
from kitcn_temporal._wire import (
    CALL_ID_PREFIX,
    GATE_WORKFLOW,
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    debounce_holder_id,
)
from kitcn_temporal.execution._direct import CommitGuard
from kitcn_temporal.jobs._handles import Jobs
from kitcn_temporal.ops._devserver import DevServer, free_port, start_dev_server

ROOT = Path(__file__).resolve().parent.parent
_CONCURRENCY = 100
#: Pause before each timed run, for the server to finish the previous run's background work.
SETTLE_S = 2.0


def start_server(prefix: str) -> tuple[DevServer, int, Path]:
    """An embedded dev server (its data in a new temporary directory) serving its own metrics on
    a free port: the server, that port and the directory."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    metrics_port = free_port()  # the server's own metrics: persistence requests and matching tasks
    server = start_dev_server(
        db_file=workdir / "temporal.db",
        log_path=workdir / "server.log",
        extra_args=("--metrics-port", str(metrics_port)),
    )
    return server, metrics_port, workdir


async def _bounded(n: int, make: Callable[[int], Awaitable[Any]], at_once: int = _CONCURRENCY) -> list[Any]:
    """Run ``make(i)`` for i in range(n), at most ``at_once`` at a time, in order."""
    limit = asyncio.Semaphore(at_once)

    async def one(i: int) -> Any:
        async with limit:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _wait_all(client: Client, ids: list[str]) -> None:
    await _bounded(len(ids), lambda i: client.get_workflow_handle(ids[i]).result())


async def _discard(client: Client, ids: list[str], timeout: float = 120.0, *, task_queue: str | None = None) -> None:
    """Terminate a producer-rate run's jobs, then wait until visibility shows none running
    (on ``task_queue``, when given).

    Terminating 1 000 delayed starts leaves the server that many visibility updates to
    write; waiting for them keeps that work out of the next run's timing.
    """
    await _bounded(len(ids), lambda i: client.get_workflow_handle(ids[i]).terminate())
    deadline = time.monotonic() + timeout
    # Gates (kitcn.Gate, the capped procedures' slots) run for as long as their procedure.
    running = f"ExecutionStatus = 'Running' AND WorkflowType != '{GATE_WORKFLOW}'"
    running += f" AND TaskQueue = '{task_queue}'" if task_queue else ""
    while (await client.count_workflows(running)).count:
        if time.monotonic() > deadline:
            raise TimeoutError("terminated workflows still show as running in visibility")
        await asyncio.sleep(0.2)


async def e2e_kitcn(kitcn: KitcnClient, n: int, name: str = "work.noop") -> float:
    """Completed jobs per second: ``n`` ``schedule.now`` jobs of procedure ``name`` of
    ``bench.app`` (a trivial mutation by default; it takes ``{"n": i}``)."""
    started = time.perf_counter()
    ids = await _bounded(n, lambda i: kitcn.scheduler.run_after(0, name, {"n": i}))
    await _wait_all(kitcn.client, ids)
    return n / (time.perf_counter() - started)


async def e2e_raw(client: Client, task_queue: str, n: int) -> float:
    """Completed jobs per second: ``n`` hand-written workflows running one activity."""
    started = time.perf_counter()
    handles = await _bounded(
        n,
        lambda i: client.start_workflow(RawJob.run, i, id=f"raw-{uuid.uuid4()}", task_queue=task_queue),
    )
    await _wait_all(client, [h.id for h in handles])
    return n / (time.perf_counter() - started)


async def e2e_tuned(client: Client, task_queue: str, n: int) -> float:
    """Completed jobs per second: ``n`` hand-tuned temporalio jobs (``bench.tuned``)."""
    started = time.perf_counter()
    handles = await _bounded(n, lambda i: start_tuned(client, task_queue, i))
    await _wait_all(client, [h.id for h in handles])
    return n / (time.perf_counter() - started)


async def schedule_rate_kitcn(kitcn: KitcnClient, n: int, *, keyed: bool = False) -> float:
    """Producer rate: ``schedule.after(60 s)`` calls per second (``keyed``: each with its own
    idempotency key, ``schedule.options(key=...)``)."""
    run = uuid.uuid4().hex[:8]

    def key(i: int) -> str | None:
        return f"bench:{run}:{i}" if keyed else None

    started = time.perf_counter()
    ids = await _bounded(n, lambda i: kitcn.scheduler.run_after(60_000, "work.noop", {"n": i}, key=key(i)))
    rate = n / (time.perf_counter() - started)
    await _discard(kitcn.client, ids)
    return rate


async def schedule_rate_debounced(kitcn: KitcnClient, n: int) -> float:
    """Producer rate: ``schedule.debounce(key, 60 s)`` calls per second, each on a key of its own
    (each call starts the key's holder and its job: what a debounced schedule costs)."""
    run = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    ids = await _bounded(n, lambda i: kitcn.scheduler.run_debounced(f"bench:{run}:{i}", 60_000, "work.noop", {"n": i}))
    rate = n / (time.perf_counter() - started)
    await _discard(kitcn.client, [*ids, *(debounce_holder_id(f"bench:{run}:{i}") for i in range(n))])
    return rate


async def debounce_collapse(kitcn: KitcnClient, keys: int, calls: int, period_ms: int) -> dict[str, float]:
    """``calls`` debounced calls on each of ``keys`` keys (one after another per key, the keys at
    once), then every job run: calls per run (the collapse ratio) and how long a further call on
    a pending key takes (it updates the key's job: no new workflow)."""
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []

    async def burst(k: int) -> set[str]:
        ids = set()
        for i in range(calls):
            began = time.perf_counter()
            ids.add(await kitcn.scheduler.run_debounced(f"burst:{run}:{k}", period_ms, "work.noop", {"n": i}))
            if i:
                latencies.append((time.perf_counter() - began) * 1000)
        return ids

    jobs = set().union(*await asyncio.gather(*(burst(k) for k in range(keys))))
    await _wait_all(kitcn.client, sorted(jobs))
    return {"calls_per_run": keys * calls / len(jobs), "repeat_call_p50_ms": statistics.median(latencies)}


#: What a raw start carries besides its input, for ``schedule_rate_raw``.
RawRecord = Literal["none", "search_attributes", "job"]


async def schedule_rate_raw(client: Client, task_queue: str, n: int, *, record: RawRecord = "none") -> float:
    """Producer rate: ``start_workflow`` calls per second, delayed 60 s.

    ``record`` says what else each start carries: nothing (a bare start), only the three
    search attributes semantics §4 (docs/semantics.md) puts on every job, or the whole record of a kitcn job (those
    search attributes, its spec and small arguments in the memo, a summary): the cost of that record,
    apart from the plugin's own code.
    """

    def extra(i: int) -> dict[str, Any]:
        if record == "none":
            return {}
        due = datetime.now(timezone.utc) + timedelta(seconds=60)
        attrs = {
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(SA_FUNCTION, "raw.noop"),
                    SearchAttributePair(SA_STATE, "pending"),
                    SearchAttributePair(SA_SCHEDULED_TIME, due),
                ]
            )
        }
        if record == "search_attributes":
            return attrs
        spec = {"name": "raw.noop", "options": {"kind": "mutation", "timeout_ms": 60_000}, "scheduled_time": 0}
        return {
            **attrs,
            "memo": {"kitcn": spec, "args": {"n": i}},
            "static_summary": f"raw.noop at {due:%Y-%m-%d %H:%M:%S} UTC",
        }

    started = time.perf_counter()
    handles = await _bounded(
        n,
        lambda i: client.start_workflow(
            RawJob.run,
            i,
            id=f"raw-{uuid.uuid4()}",
            task_queue=task_queue,
            start_delay=timedelta(seconds=60),
            **extra(i),
        ),
    )
    rate = n / (time.perf_counter() - started)
    await _discard(client, [h.id for h in handles])
    return rate


class Rounds:
    """Rates of several variants measured in rounds: each round runs every variant once.

    The order rotates from round to round (with two variants: kitcn first, then raw
    first) so that whatever the server is still digesting from the previous run weighs on
    every variant alike; the server gets a short pause before each run. A ratio is taken
    within each round, then the median over rounds is reported.
    """

    def __init__(self, rates: list[dict[str, float]]) -> None:
        self.rates = rates

    @classmethod
    async def measure(
        cls, repeats: int, variants: dict[str, Callable[[], Awaitable[float]]], settle_s: float = SETTLE_S
    ) -> Rounds:
        names = list(variants)
        rates = []
        for i in range(repeats):
            shift = i % len(names)
            got = {}
            for name in names[shift:] + names[:shift]:
                await asyncio.sleep(settle_s)
                got[name] = await variants[name]()
            rates.append(got)
        return cls(rates)

    def rate(self, name: str) -> float:
        return statistics.median(r[name] for r in self.rates)

    def ratio(self, name: str, baseline: str) -> float:
        return statistics.median(r[name] / r[baseline] for r in self.rates)


async def events_per_job(client: Client, workflow_id: str) -> int:
    return len([e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()])


async def sample_events(kitcn: KitcnClient, task_queue: str) -> tuple[int, int]:
    """History length of one completed job of each kind."""
    job = await kitcn.scheduler.run_after(0, "work.noop", {"n": 1})
    await kitcn.client.get_workflow_handle(job).result()
    raw = await kitcn.client.start_workflow(RawJob.run, 1, id=f"raw-{uuid.uuid4()}", task_queue=task_queue)
    await raw.result()
    return await events_per_job(kitcn.client, job), await events_per_job(kitcn.client, raw.id)


async def lateness(kitcn: KitcnClient, n: int) -> dict[str, float]:
    """How late ``n`` jobs due at the same instant start, in ms (p50, p99, max)."""
    batch = uuid.uuid4().hex
    lead_s = 2.0 + n * 0.01  # time to schedule them all before they are due
    due_ms = int((time.time() + lead_s) * 1000)
    await _bounded(n, lambda i: kitcn.scheduler.run_at(due_ms, "work.stamp", {"batch": batch}))
    while len(work.STARTED.get(batch, [])) < n:
        await asyncio.sleep(0.05)
    late = sorted(t * 1000 - due_ms for t in work.STARTED.pop(batch))
    return {
        "p50": statistics.median(late),
        "p99": late[min(len(late) - 1, int(len(late) * 0.99))],
        "max": late[-1],
    }


async def status_get_ms(kitcn: KitcnClient, samples: int) -> float:
    """Median latency of ``system.get`` on a pending job, in ms."""
    job = await kitcn.scheduler.run_after(600_000, "work.noop", {"n": 0})
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        await kitcn.system.get(job)
        times.append((time.perf_counter() - t) * 1000)
    await kitcn.scheduler.cancel(job)
    return statistics.median(times)


async def pending_jobs(kitcn: KitcnClient, n: int) -> list[str]:
    """Schedule ``n`` jobs ten minutes out and wait until visibility lists them all."""
    ids = await _bounded(n, lambda i: kitcn.scheduler.run_after(600_000, "work.noop", {"n": i}))
    while True:
        count = await kitcn.client.count_workflows(
            f"KitcnState='pending' AND ExecutionStatus='Running' AND TaskQueue='{kitcn.task_queue}'"
        )
        if count.count >= n:
            return ids
        await asyncio.sleep(0.2)


async def status_list_ms(kitcn: KitcnClient, n: int) -> float:
    """Time to list ``n`` pending jobs through ``system.list``, in ms."""
    t = time.perf_counter()
    rows = await kitcn.system.list(state="pending", name="work.noop", limit=n)
    elapsed = (time.perf_counter() - t) * 1000
    if len(rows) < n:
        raise RuntimeError(f"listed {len(rows)} pending jobs, expected {n}")
    return elapsed


WORKER = """
import asyncio, os, sys
sys.path.insert(0, {root!r})
from temporalio.client import Client
from temporalio.worker import Worker
from kitcn_temporal import App, KitcnPlugin

async def main():
    app = App.discover("bench.app", task_queue={queue!r})
    client = await Client.connect({address!r}, plugins=[KitcnPlugin(app)])
    async with Worker(client, task_queue=app.task_queue):
        print("ready", flush=True)
        await asyncio.Event().wait()

if __name__ == "__main__":
    asyncio.run(main())
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def worker_rss_with_pending(kitcn: KitcnClient, address: str, n: int, workdir: Path) -> dict[str, float]:
    """RSS of a worker process (its own task queue) before and after ``n`` jobs are pending on it."""
    queue = f"bench-rss-{uuid.uuid4().hex[:8]}"
    script = workdir / "rss_worker.py"
    script.write_text(WORKER.format(root=str(ROOT), queue=queue, address=address))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the RSS worker did not start")
        idle = rss_mb(proc.pid)
        scoped = KitcnClient(kitcn.client, kitcn.app, task_queue=queue)
        await pending_jobs(scoped, n)
        await asyncio.sleep(1.0)  # let the worker settle before reading its memory
        return {"idle": idle, "pending": rss_mb(proc.pid)}
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM ``proc``; SIGKILL it if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def machine_info(server_version: str) -> dict[str, Any]:
    import platform
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_server": server_version,
        "platform": platform.platform(),
    }


async def cron_sync(kitcn: KitcnClient, n: int) -> dict[str, float]:
    """Seconds to sync ``n`` new crons, and the writes a second, unchanged sync makes."""
    from kitcn_temporal import cron_jobs

    crons = cron_jobs()
    for i in range(n):
        crons.interval(f"bench-{i}", {"minutes": 5 + i}, work.noop, {"n": i})
    started = time.perf_counter()
    first = await crons.sync(kitcn)
    elapsed = time.perf_counter() - started
    if len(first.created) != n:
        raise RuntimeError(f"the first sync created {len(first.created)} of {n} crons")
    again = await crons.sync(kitcn)
    return {"seconds": elapsed, "resync_writes": float(again.writes)}


async def direct_calls(kitcn: KitcnClient, samples: int) -> dict[str, float]:
    """Median latency (ms) of direct calls, in this process and on a worker.

    ``direct_*``: how a ``KitcnClient`` calls a query or mutation now (in-process; a
    mutation that schedules arms and deletes a commit guard). ``call_*``: the same call
    through a ``kitcn.Call`` workflow (``on_worker=True``, what every direct call was before),
    eagerly started on the worker sharing the client. ``rpc``: one
    ``DescribeWorkflowExecution``. The app has a SQLite database: the query reads it once,
    the mutations commit their record. Samples are interleaved, variant by variant.
    """
    app = kitcn.app
    read, noop, later = (app.get(name) for name in ("work.read", "work.noop", "work.schedule_later"))
    pending = await kitcn.scheduler.run_after(600_000, "work.noop", {"n": 0})
    handle = kitcn.client.get_workflow_handle(pending)
    variants: dict[str, Callable[[int], Awaitable[Any]]] = {
        "rpc": lambda i: handle.describe(),
        "direct_query": lambda i: kitcn.call(read, {"n": i}),
        "call_query": lambda i: kitcn.call(read, {"n": i}, on_worker=True),
        "direct_mutation": lambda i: kitcn.call(noop, {"n": i}),
        "call_mutation": lambda i: kitcn.call(noop, {"n": i}, on_worker=True),
        "direct_mutation_with_schedule": lambda i: kitcn.call(later, {"n": i}),
        "call_mutation_with_schedule": lambda i: kitcn.call(later, {"n": i}, on_worker=True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    scheduled = [pending]
    for i in range(-3, samples):  # three rounds of warm-up
        for name, call in variants.items():
            t = time.perf_counter()
            result = await call(i)
            if i >= 0:
                times[name].append((time.perf_counter() - t) * 1000)
            if name.endswith("with_schedule"):
                scheduled.append(result)
    await _discard(kitcn.client, scheduled, task_queue=kitcn.task_queue)
    return {name: statistics.median(values) for name, values in times.items()}


async def concurrent_queries(kitcn: KitcnClient, n: int, *, on_worker: bool) -> float:
    """Queries per second: ``n`` direct calls of ``work.read`` at once."""
    read = kitcn.app.get("work.read")
    started = time.perf_counter()
    await asyncio.gather(*(kitcn.call(read, {"n": i}, on_worker=on_worker) for i in range(n)))
    return n / (time.perf_counter() - started)


async def guard_costs(kitcn: KitcnClient, samples: int) -> dict[str, float]:
    """Median latency (ms) of arming a commit guard and of releasing one, by deleting it (what
    a direct mutation does) or by terminating it (which leaves it listed for the retention)."""
    jobs = Jobs(kitcn.client, kitcn.task_queue)
    times: dict[str, list[float]] = {"arm": [], "delete": [], "terminate": []}
    for i in range(samples):
        guard = CommitGuard(jobs, f"{CALL_ID_PREFIX}{uuid.uuid4()}", "work.noop", timedelta(seconds=30))
        t = time.perf_counter()
        await guard.arm()
        times["arm"].append((time.perf_counter() - t) * 1000)
        how = "delete" if i % 2 else "terminate"
        t = time.perf_counter()
        if how == "delete":
            await guard.release()
        else:
            await kitcn.client.get_workflow_handle(guard.exec_id).terminate()
        times[how].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}
