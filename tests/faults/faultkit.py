"""What the fault tests share: their sizes, the fault app's database and ledger, and worker processes.

Two modes, chosen by the ``KITCN_FAULTS`` environment variable (see :data:`SIZES`):

=======================  =================  =====================
scenario                 default (CI)       ``KITCN_FAULTS=full``
=======================  =================  =====================
worker killed            300 jobs, 5 kills  300 jobs, 5 kills
Temporal server restart  500 jobs           500 jobs
load burst               2 000 jobs         5 000 jobs
=======================  =================  =====================

On a 2-core machine the whole ``tests/faults/`` suite takes about 2.5 minutes by default and
about 4 in full mode, the 5 000-job burst alone close to 3.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client

from conftest import connect
from faultapp.models import Base, Effect
from helpers import FINAL
from kitcn_temporal import App, KitcnClient, ScheduledFunction
from testapp.probe import wait_for

HERE = Path(__file__).resolve().parent
WORKER_SCRIPT = HERE.parent / "workerproc.py"
#: The fault workers notice a lost action worker after this long (semantics §4).
HEARTBEAT = timedelta(seconds=2)
#: A job cached on a dead worker moves to a live one after this long (``KitcnPlugin``).
STICKY = timedelta(seconds=3)
#: Temporal's default workflow task timeout: a mutation (a local activity inside a workflow
#: task) lost with its worker is handed to another worker after this long.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class Sizes:
    """How big each fault scenario is."""

    #: Mixed jobs running or due while the worker is killed, and how many kills in one run.
    kill_jobs: int
    kills: int
    #: Delayed jobs pending while the Temporal server restarts.
    restart_jobs: int
    #: The burst of the load test.
    load_jobs: int


#: The full sizes (``KITCN_FAULTS=full``).
FULL = Sizes(kill_jobs=300, kills=5, restart_jobs=500, load_jobs=5000)
#: The default, for CI: the full sizes except the load burst, 2 000 jobs instead of 5 000.
CI = Sizes(kill_jobs=300, kills=5, restart_jobs=500, load_jobs=2000)
SIZES = FULL if os.environ.get("KITCN_FAULTS", "").lower() == "full" else CI


@dataclass
class FaultApp:
    """The fault app on one task queue: its SQLite database, its ledger, a client for it."""

    app: App
    url: str
    ledger: Path
    client: Client
    kitcn: KitcnClient
    directory: Path

    @property
    def queue(self) -> str:
        return self.app.task_queue

    async def effects(self, token: str) -> Counter[str]:
        """How many effect rows each job wrote, for the jobs carrying ``token``."""
        assert self.app.store is not None
        async with self.app.store.engine.connect() as conn:
            rows = (await conn.execute(select(Effect.job_id).where(Effect.token == token))).all()
        return Counter(row.job_id for row in rows)

    def ledger_runs(self) -> dict[str, list[tuple[str, int]]]:
        """Each action job's ledger lines, as ``(start|done, pid)`` in order."""
        runs: dict[str, list[tuple[str, int]]] = defaultdict(list)
        if self.ledger.exists():
            for line in self.ledger.read_text().splitlines():
                event, job_id, pid = line.split()
                runs[job_id].append((event, int(pid)))
        return runs


@asynccontextmanager
async def fault_app(address: str, directory: Path) -> AsyncIterator[FaultApp]:
    """The fault app on a new task queue, with a fresh SQLite database under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{directory / 'app.db'}"
    app = App.discover(
        "faultapp", task_queue=f"faults-{uuid.uuid4().hex[:8]}", database=url, action_heartbeat_timeout=HEARTBEAT
    )
    assert app.store is not None
    await app.store.create_all(Base.metadata)
    client = await connect(address, app)
    try:
        yield FaultApp(app, url, directory / "ledger.txt", client, KitcnClient(client, app), directory)
    finally:
        await app.store.dispose()


@dataclass
class WorkerProcess:
    """One life of a fault worker, its output in files."""

    process: asyncio.subprocess.Process
    out: Path
    err: Path
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.out.read_text()

    async def kill(self) -> float:
        """SIGKILL; returns the wall-clock time of the kill once the process is gone."""
        self.process.send_signal(signal.SIGKILL)
        killed = time.time()
        await self.process.wait()
        return killed

    async def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop); returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    def memory_mib(self) -> tuple[float, float]:
        """The process's resident memory now and at its peak (``VmRSS``, ``VmHWM``), in MiB."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]


class Workers:
    """Starts fault workers for one app; kills whatever is still running at the end."""

    def __init__(self, address: str, fault: FaultApp) -> None:
        self.address = address
        self.fault = fault
        self.started: list[WorkerProcess] = []

    async def start(self, *options: str) -> WorkerProcess:
        """A new worker life, once it polls (``options``: ``--kill-after-commits N``, ``--graceful S``)."""
        index = len(self.started)
        out, err = self.fault.directory / f"worker{index}.out", self.fault.directory / f"worker{index}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(WORKER_SCRIPT), "--app", "faultapp",
                "--address", self.address, "--queue", self.fault.queue, "--database", self.fault.url,
                "--heartbeat", str(HEARTBEAT.total_seconds()), *options,
                stdout=out_file, stderr=err_file, start_new_session=True,
            )  # fmt: skip
        worker = WorkerProcess(process, out, err)
        self.started.append(worker)

        async def ready() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"the worker exited with {process.returncode}: {err.read_text()[-2000:]}")
            return "ready" in out.read_text()

        await wait_for(ready, timeout=60, interval=0.05)
        return worker

    async def stop_all(self) -> None:
        for worker in self.started:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()


async def final_rows(fault: FaultApp, job_ids: list[str], timeout: float) -> dict[str, ScheduledFunction]:
    """Each job's row once every one of them is final (``success``, ``failed`` or ``canceled``)."""
    rows: dict[str, ScheduledFunction] = {}
    limit = asyncio.Semaphore(32)

    async def get(job_id: str) -> None:
        async with limit:
            row = await fault.kitcn.system.get(job_id)
        if row is not None and row.state.kind in FINAL:
            rows[job_id] = row

    async def all_final() -> bool:
        await asyncio.gather(*(get(j) for j in job_ids if j not in rows))
        return len(rows) == len(job_ids)

    await wait_for(all_final, timeout=timeout, interval=0.5)
    return rows
