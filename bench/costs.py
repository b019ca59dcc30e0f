"""What one job costs, shape by shape, measured side by side in one run on one server.

For each shape, ``n`` jobs run while the bench reads:

* **CPU** of the Temporal server process and of a worker process of its own, from
  ``/proc/<pid>/stat`` (user + system time), over the whole window from the first start until
  the server is quiet again, less what each process burns idle over as long (the idle rate is
  measured just before, with the same polling going on). This (the calling) process is not
  measured: reading and parsing the server's metrics costs it more than starting jobs does;
* **history**: events and bytes (serialized ``HistoryEvent`` size) of sampled jobs;
* **persistence** from the server's own Prometheus metrics (``persistence_requests`` and
  ``visibility_persistence_requests`` by operation), less the idle rate: every request per job,
  the writes among them, and the visibility writes. Visibility writes are also *estimated*
  from the history, as Temporal makes them: one when the execution is created, one per
  ``UpsertWorkflowSearchAttributes`` or ``WorkflowPropertiesModified`` event, one when it
  closes (the server may merge an upsert into the close's write when both land in one
  transaction, so the measured figure can be lower);
* **requests** to the frontend (every RPC of the producer and the worker) and the tasks put
  on task queues through matching (``service_requests`` of those services), less the idle rate.

The producer is this process and the worker another one, as in production where a web
process schedules and workers run: so no start here is eager (eager start needs the worker in
the starting process). Procedures are trivial and the worker has no database: these are
Temporal's and kitcn's costs, not a handler's.

Adding a shape (capped jobs, for one) is one :class:`Shape` in :data:`SHAPES` and, if it needs
procedures, a worker for them in ``WORKER``.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import measure
from bench.raw import RawJob
from bench.tuned import start_tuned
from kitcn_temporal import JOB_WORKFLOW, App, KitcnClient, cron_jobs
from kitcn_temporal.crons._spec import SCHEDULE_ID_PREFIX

ROOT = Path(__file__).resolve().parent.parent
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
#: A window whose server CPU rate is within this of its rate before any job (ms per s) is quiet.
_QUIET_MS_PER_S = 15.0
_CONCURRENCY = 50

#: Persistence operations that write (Temporal's persistence interface; the SQL stores
#: implement the same ones). Everything else there is a read.
WRITE_OPERATIONS = frozenset(
    {
        "CreateWorkflowExecution",
        "UpdateWorkflowExecution",
        "ConflictResolveWorkflowExecution",
        "SetWorkflowExecution",
        "DeleteWorkflowExecution",
        "DeleteCurrentWorkflowExecution",
        "AppendHistoryNodes",
        "DeleteHistoryBranch",
        "ForkHistoryBranch",
        "AddHistoryTasks",
        "CompleteHistoryTask",
        "RangeCompleteHistoryTasks",
        "CreateTasks",
        "CompleteTasksLessThan",
        "CreateTaskQueue",
        "UpdateTaskQueue",
        "UpdateTaskQueueUserData",
        "UpdateShard",
        "AssertShardOwnership",
    }
)
#: Reads the server makes on its own schedule whatever the load (namespace and cluster metadata
#: refreshes): left out of the per-job counts.
BACKGROUND = frozenset(
    {
        "GetCurrentClusterMetadata",
        "GetClusterMetadata",
        "ListClusterMetadata",
        "GetNamespace",
        "GetNamespaceByID",
        "ListNamespaces",
        "GetMetadata",
        "GetClusterMembers",
        "UpsertClusterMembership",
        "PruneClusterMembership",
    }
)
#: Matching operations that put a task on a task queue (one per workflow or activity task
#: dispatched through matching; an eager start's first workflow task skips it).
MATCHING_ADDS = frozenset({"AddWorkflowTask", "AddActivityTask"})
#: Visibility operations that write.
VISIBILITY_WRITES = frozenset(
    {
        "RecordWorkflowExecutionStarted",
        "RecordWorkflowExecutionClosed",
        "UpsertWorkflowExecution",
        "DeleteWorkflowExecution",
    }
)
_UPSERT_EVENTS = frozenset(
    {EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED}
)


# -- reading the processes and the server ------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) * _TICK_S


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def server_counters(text: str) -> dict[tuple[str, str], float]:
    """``(metric, operation-or-series) -> value`` for the counters the costs need, from the
    server's Prometheus text: persistence requests by operation, requests to the frontend and
    matching services by operation, and workflows closed by task queue and type
    (``workflow_success|failed``: ``"<taskqueue>/<workflowType>"``)."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name in ("persistence_requests", "visibility_persistence_requests"):
            key = (name, tags.get("operation", ""))
        elif name == "service_requests" and tags.get("service_name") in ("frontend", "matching"):
            key = (f"{tags['service_name']}_requests", tags.get("operation", ""))
        elif name in ("workflow_success", "workflow_failed"):
            key = ("workflow_closed", f"{tags.get('taskqueue', '')}/{tags.get('workflowType', '')}")
        else:
            continue
        found[key] = found.get(key, 0.0) + float(value)
    return found


@dataclass(frozen=True)
class Reading:
    """CPU of the server and the worker, and the server's counters, at one instant."""

    at: float
    server_cpu: float
    worker_cpu: float
    counters: dict[tuple[str, str], float]

    def minus(self, earlier: Reading, key: tuple[str, str]) -> float:
        return self.counters.get(key, 0.0) - earlier.counters.get(key, 0.0)


class Probe:
    """Reads the server (its pid and metrics port) and the worker process.

    :param poll_s: how often the server's metrics are read while jobs run (each read costs the
        server a little: the idle rate is measured with the same reads going on); quiet is
        judged over two such intervals (long enough for a few clock ticks of CPU time).
    """

    def __init__(self, server_pid: int, metrics_port: int, worker_pid: int, poll_s: float) -> None:
        self.server_pid = server_pid
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.worker_pid = worker_pid
        self.poll_s = poll_s

    async def read(self) -> Reading:
        def get() -> str:
            with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
                return str(response.read().decode())

        text = await asyncio.to_thread(get)
        return Reading(time.monotonic(), cpu_s(self.server_pid), cpu_s(self.worker_pid), server_counters(text))

    async def idle(self, seconds: float) -> Idle:
        """The processes' CPU rates and the server's request rates while nothing runs (read over
        ``seconds``, at least one polling interval)."""
        first = await self.read()
        deadline = first.at + seconds
        while True:
            await asyncio.sleep(self.poll_s)
            last = await self.read()
            if last.at >= deadline:
                return Idle(first, last)


@dataclass(frozen=True)
class Idle:
    first: Reading
    last: Reading

    @property
    def seconds(self) -> float:
        return self.last.at - self.first.at

    def rate(self, what: str) -> float:
        """CPU seconds per second of ``server`` or ``worker``."""
        attr = f"{what}_cpu"
        return float(getattr(self.last, attr) - getattr(self.first, attr)) / self.seconds

    def counter_rate(self, key: tuple[str, str]) -> float:
        return self.last.minus(self.first, key) / self.seconds


# -- the shapes --------------------------------------------------------------------------------


@dataclass
class Env:
    """What the shapes start jobs with."""

    client: Client
    #: Producer of the app whose jobs the worker process runs (no database, like the bench's).
    kitcn: KitcnClient
    #: The same app with a SQLite database, for direct mutations (it runs them in this process).
    kitcn_sql: KitcnClient
    raw_queue: str
    tuned_queue: str
    delay_ms: int
    #: Names of the crons the ``cron`` shape triggers (made by :func:`make_crons`).
    crons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Shape:
    """One kind of job: how to start ``n`` of them, where they close, and what it is."""

    name: str
    what: str
    #: Starts ``n`` jobs; returns the ids of some of them (whose histories are sampled).
    start: Callable[[Env, int], Awaitable[list[str]]]
    #: ``(task queue, workflow type)`` of the workflows whose closes mark the jobs done.
    closes: Callable[[Env], tuple[str, str]]


async def _bounded(n: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return await measure._bounded(n, make, _CONCURRENCY)


def _tag(value: str) -> str:
    """A name as the server's metrics spell it in a label (``bench-cost`` -> ``bench_cost``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


def _jobs(env: Env) -> tuple[str, str]:
    return env.kitcn.task_queue, JOB_WORKFLOW


async def _plain(env: Env, n: int) -> list[str]:
    return await _bounded(n, lambda i: env.kitcn.scheduler.run_after(0, "work.noop", {"n": i}))


async def _delayed(env: Env, n: int) -> list[str]:
    return await _bounded(n, lambda i: env.kitcn.scheduler.run_after(env.delay_ms, "work.noop", {"n": i}))


async def _keyed(env: Env, n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return await _bounded(n, lambda i: env.kitcn.scheduler.run_after(0, "work.noop", {"n": i}, key=f"cost:{run}:{i}"))


async def _capped(env: Env, n: int) -> list[str]:
    """``schedule.now`` of a mutation capped with ``.concurrency(8)``: each run asks its gate
    (``kitcn.Gate``) for a slot and gives it back, so the gate's work is in the server's CPU."""
    return await _bounded(n, lambda i: env.kitcn.scheduler.run_after(0, "work.capped_noop", {"n": i}))


async def _cron(env: Env, n: int) -> list[str]:
    """``n`` cron runs: ``n`` crons (yearly, created before the window) each triggered once now,
    which is how Temporal's schedule starts a run when its time comes (the trigger is a request
    to the schedule instead of its timer firing)."""
    handles = [env.client.get_schedule_handle(SCHEDULE_ID_PREFIX + name) for name in env.crons[:n]]
    await _bounded(len(handles), lambda i: handles[i].trigger())
    return []  # their ids are known only once they started: sampled from visibility


async def _direct_mutation(env: Env, n: int) -> list[str]:
    """A direct call of a mutation (SQLite store, in this process) that schedules one job due now:
    its commit guard is armed, the job started, the guard deleted; the job runs on the worker."""
    proc = env.kitcn_sql.app.get("work.schedule_now")
    return await _bounded(n, lambda i: env.kitcn_sql.call(proc, {"n": i}))


async def _raw(env: Env, n: int) -> list[str]:
    handles = await _bounded(
        n, lambda i: env.client.start_workflow(RawJob.run, i, id=f"raw-{uuid.uuid4()}", task_queue=env.raw_queue)
    )
    return [h.id for h in handles]


async def _tuned(env: Env, n: int) -> list[str]:
    handles = await _bounded(n, lambda i: start_tuned(env.client, env.tuned_queue, i))
    return [h.id for h in handles]


#: The shapes, in the order they run and print.
SHAPES: tuple[Shape, ...] = (
    Shape("plain", "schedule.now of a mutation", _plain, _jobs),
    Shape("delayed", "schedule.after(delay) of a mutation", _delayed, _jobs),
    Shape("keyed", "schedule.now with a key (idempotency)", _keyed, _jobs),
    Shape("capped", "schedule.now of a mutation capped fleet-wide (.concurrency(8))", _capped, _jobs),
    Shape("cron", "one run of a cron (Temporal schedule)", _cron, _jobs),
    Shape("direct_mutation", "direct mutation (SQL store) that schedules one job now", _direct_mutation, _jobs),
    Shape("raw", "plain temporalio: workflow + one activity", _raw, lambda env: (env.raw_queue, "raw.Job")),
    Shape(
        "tuned",
        "hand-tuned temporalio (local activity, no sandbox)",
        _tuned,
        lambda env: (env.tuned_queue, "tuned.Job"),
    ),
)


async def make_crons(env: Env, n: int) -> None:
    """Declare and sync ``n`` yearly crons of ``work.noop`` for the app (outside the window)."""
    from bench.app import work

    crons = cron_jobs()
    names = [f"cost-{i}" for i in range(n)]
    for i, name in enumerate(names):
        crons.cron(name, "0 0 1 1 *", work.noop, {"n": i})
    await crons.sync(env.kitcn)
    env.crons = names


# -- measuring one shape -----------------------------------------------------------------------


async def measure_shape(
    env: Env, probe: Probe, shape: Shape, n: int, *, quiet: float, idle_s: float, timeout: float
) -> dict[str, Any]:
    """The per-job costs of ``n`` jobs of ``shape``: once the server is quiet (its CPU rate at
    most ``quiet`` ms per s), an idle window, then the jobs, until the server is quiet again."""
    deadline = time.monotonic() + timeout
    await _until_quiet(probe, await probe.read(), quiet, deadline)
    idle = await probe.idle(idle_s)
    queue, workflow_type = shape.closes(env)
    closed_key = ("workflow_closed", f"{_tag(queue)}/{_tag(workflow_type)}")
    before = await probe.read()
    sample = await shape.start(env, n)
    deadline = before.at + timeout
    last = await probe.read()
    while last.minus(before, closed_key) < n:
        if last.at > deadline:
            raise TimeoutError(
                f"{shape.name}: {last.minus(before, closed_key):.0f} of {n} jobs closed in {timeout:.0f} s"
            )
        await asyncio.sleep(probe.poll_s)
        last = await probe.read()
    last = await _until_quiet(probe, last, quiet, deadline)
    elapsed = last.at - before.at

    def net_cpu_ms(what: str) -> float:
        spent = float(getattr(last, f"{what}_cpu") - getattr(before, f"{what}_cpu"))
        return max(0.0, spent - idle.rate(what) * elapsed) * 1000 / n

    def by_operation(metric: str) -> dict[str, float]:
        """Requests per job by operation, less the idle rate, without the periodic metadata reads."""
        keys = {k for k in (*last.counters, *idle.last.counters) if k[0] == metric and k[1] not in BACKGROUND}
        net = {k[1]: (last.minus(before, k) - idle.counter_rate(k) * elapsed) / n for k in keys}
        return {op: round(value, 2) for op, value in sorted(net.items()) if value >= 0.005}

    persistence, visibility = by_operation("persistence_requests"), by_operation("visibility_persistence_requests")
    frontend, matching = by_operation("frontend_requests"), by_operation("matching_requests")

    sample = sample or await _cron_sample(env)
    events, sizes, upserts = await _histories(env.client, sample[:20])
    return {
        "server_cpu_ms_per_job": net_cpu_ms("server"),
        "worker_cpu_ms_per_job": net_cpu_ms("worker"),
        "history_events_per_job": events,
        "history_bytes_per_job": sizes,
        "persistence_requests_per_job": sum(persistence.values()),
        "persistence_writes_per_job": sum(v for op, v in persistence.items() if op in WRITE_OPERATIONS),
        "visibility_writes_per_job": sum(v for op, v in visibility.items() if op in VISIBILITY_WRITES),
        "visibility_writes_per_job_estimated": 2 + upserts,
        "frontend_requests_per_job": sum(frontend.values()),
        "matching_tasks_per_job": sum(v for op, v in matching.items() if op in MATCHING_ADDS),
        "seconds": elapsed,
        "persistence_by_operation": persistence,
        "visibility_by_operation": visibility,
        "frontend_by_operation": frontend,
        "matching_by_operation": matching,
    }


async def _until_quiet(probe: Probe, last: Reading, quiet: float, deadline: float) -> Reading:
    """Read on until the server's CPU rate over one window is at most ``quiet`` ms per s (or the
    deadline): jobs close before their visibility writes and task clean-up are done."""
    while last.at < deadline:
        await asyncio.sleep(2 * probe.poll_s)
        now = await probe.read()
        rate = (now.server_cpu - last.server_cpu) * 1000 / (now.at - last.at)
        last = now
        if rate <= quiet:
            break
    return last


async def _cron_sample(env: Env) -> list[str]:
    ids = []
    for name in env.crons[:20]:
        desc = await env.client.get_schedule_handle(SCHEDULE_ID_PREFIX + name).describe()
        ids += [
            action.action.workflow_id for action in desc.info.recent_actions if hasattr(action.action, "workflow_id")
        ]
    return ids


async def _histories(client: Client, ids: Sequence[str]) -> tuple[float, float, float]:
    """Median events, bytes and search-attribute upserts of the histories of ``ids``."""
    if not ids:
        raise RuntimeError("no job to sample the history of")
    events, sizes, upserts = [], [], []
    for workflow_id in ids:
        history = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
        events.append(len(history))
        sizes.append(sum(e.ByteSize() for e in history))
        upserts.append(sum(1 for e in history if e.event_type in _UPSERT_EVENTS))
    return statistics.median(events), statistics.median(sizes), statistics.median(upserts)


# -- the worker process ------------------------------------------------------------------------

WORKER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker
from bench.raw import RawJob, raw_noop
from bench.tuned import TunedJob, tuned_noop
from kitcn_temporal import App, KitcnPlugin

async def main():
    app = App.discover("bench.app", task_queue={queue!r})
    client = await Client.connect({address!r}, plugins=[KitcnPlugin(app)])
    plain = await Client.connect({address!r})  # the baselines: temporalio without kitcn
    async with (
        Worker(client, task_queue=app.task_queue),
        Worker(plain, task_queue={raw_queue!r}, workflows=[RawJob], activities=[raw_noop]),
        Worker(plain, task_queue={tuned_queue!r}, workflows=[TunedJob], activities=[tuned_noop]),
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()

if __name__ == "__main__":
    asyncio.run(main())
"""


async def per_job_costs(
    client: Client,
    address: str,
    server: tuple[int, int],
    workdir: Path,
    *,
    jobs: int,
    crons: int,
    delay_ms: int,
    idle_s: float,
    poll_s: float,
) -> dict[str, dict[str, Any]]:
    """Every shape's per-job costs: ``server`` is the Temporal server's ``(pid, metrics port)``.

    A worker process of its own serves the bench app and the two temporalio baselines.
    """
    suffix = uuid.uuid4().hex[:6]
    app = App.discover("bench.app", task_queue=f"bench-cost-{suffix}")
    raw_queue, tuned_queue = f"bench-cost-raw-{suffix}", f"bench-cost-tuned-{suffix}"
    script = workdir / "cost_worker.py"
    script.write_text(
        WORKER.format(
            root=str(ROOT), queue=app.task_queue, address=address, raw_queue=raw_queue, tuned_queue=tuned_queue
        )
    )
    sql_app = app.with_options(database=f"sqlite+aiosqlite:///{workdir}/cost.db")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the cost worker did not start")
        env = Env(client, KitcnClient(client, app), KitcnClient(client, sql_app), raw_queue, tuned_queue, delay_ms)
        probe = Probe(server[0], server[1], proc.pid, poll_s)
        await make_crons(env, crons)
        timeout = 120.0 + jobs * 0.5
        # What "quiet" is: the server's idle rate now, before any job, plus a margin.
        quiet = (await probe.idle(max(idle_s, 1.0))).rate("server") * 1000 + _QUIET_MS_PER_S
        options = {"quiet": quiet, "idle_s": idle_s, "timeout": timeout}
        await measure_shape(env, probe, SHAPES[0], min(jobs, 10), **options)  # warm-up
        results = {}
        for shape in SHAPES:
            n = crons if shape.name == "cron" else jobs
            results[shape.name] = await measure_shape(env, probe, shape, n, **options)
        await cron_jobs().sync(env.kitcn)  # delete the crons
        return results
    finally:
        measure.stop_process(proc)
        if sql_app.store is not None:
            await sql_app.store.dispose()


def table(costs: dict[str, dict[str, Any]]) -> str:
    """The shapes side by side, one row each."""
    columns = [
        ("server_cpu_ms_per_job", "server ms"),
        ("worker_cpu_ms_per_job", "worker ms"),
        ("history_events_per_job", "events"),
        ("history_bytes_per_job", "hist bytes"),
        ("persistence_writes_per_job", "db writes"),
        ("persistence_requests_per_job", "db reqs"),
        ("visibility_writes_per_job", "vis writes"),
        ("visibility_writes_per_job_estimated", "vis est"),
        ("frontend_requests_per_job", "frontend"),
        ("matching_tasks_per_job", "tasks"),
    ]
    lines = [f"{'per job':17}" + "".join(f"{label:>11}" for _, label in columns)]
    for name, figures in costs.items():
        lines.append(f"{name:17}" + "".join(f"{figures[key]:>11.2f}" for key, _ in columns))
    whats = {shape.name: shape.what for shape in SHAPES}
    lines += [f"  {name}: {whats[name]}" for name in costs]
    return "\n".join(lines)
