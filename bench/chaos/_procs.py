"""The processes a chaos run owns: the embedded Temporal server and ``kitcn-temporal worker`` processes.

Each runs in a process group of its own; :func:`kill_group` ends a group with SIGKILL, and
:class:`Processes` remembers every group it started so that any exit of the run (normal,
exception, signal, ``atexit``) ends them all.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kitcn_temporal.ops._devserver import DevServer, start_dev_server

ROOT = Path(__file__).resolve().parents[2]
#: What a worker prints once it polls.
READY = "worker serving"
#: Bounds on starting a worker: tries (the server may be down or cut off) and seconds per try.
WORKER_START_TRIES = 20
WORKER_READY_S = 30.0


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's group (it leads one: ``start_new_session``), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait(10)


@dataclass
class Processes:
    """Every process group the run started, ended on any exit."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        atexit.register(self.kill_all)

    def add(self, process: subprocess.Popen[bytes]) -> None:
        self.started.append(process)

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                kill_group(process)


@dataclass
class Server:
    """The embedded server on one SQLite file and port, killed (-9) and restarted on both."""

    directory: Path
    procs: Processes
    port: int
    current: DevServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.current = await loop.run_in_executor(
            None,
            lambda: start_dev_server(
                db_file=self.directory / "temporal.db", port=self.port, log_path=self.directory / "temporal.log"
            ),
        )
        self.procs.add(self.current.process)

    def kill(self) -> None:
        if self.current is not None:
            kill_group(self.current.process)


@dataclass
class Worker:
    """One ``kitcn-temporal worker`` slot: its current process and its lives."""

    index: int
    command: list[str]
    directory: Path
    procs: Processes
    process: subprocess.Popen[bytes] | None = None
    #: pid -> wall-clock time it was killed (by the run).
    killed: dict[int, float] = field(default_factory=dict)
    lives: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self) -> None:
        """Start a new life and wait until it polls, trying again (bounded) while it cannot connect."""
        for _ in range(WORKER_START_TRIES):
            if await self._try_start():
                return
            await asyncio.sleep(1.0)
        raise RuntimeError(f"worker {self.index} did not start in {WORKER_START_TRIES} tries: see {self.directory}")

    async def _try_start(self) -> bool:
        self.lives += 1
        out = self.directory / f"worker{self.index}-{self.lives}.out"
        err = self.directory / f"worker{self.index}-{self.lives}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, stdout=out_file, stderr=err_file, start_new_session=True
            )
        self.procs.add(self.process)
        deadline = time.monotonic() + WORKER_READY_S
        while time.monotonic() < deadline:
            if READY in out.read_text():
                return True
            if self.process.poll() is not None:
                return False
            await asyncio.sleep(0.1)
        kill_group(self.process)
        return False

    def kill(self) -> int:
        """SIGKILL the current life; returns its pid."""
        assert self.process is not None
        pid = self.process.pid
        self.killed[pid] = time.time()
        kill_group(self.process)
        return pid


def worker_command(address: str, queue: str, database: str) -> list[str]:
    return [
        sys.executable, "-m", "kitcn_temporal", "worker",
        "--app", "bench.chaosapp", "--address", address, "--task-queue", queue,
        "--database", database, "--crons", "", "--log-level", "warning", "--graceful-timeout", "0",
    ]  # fmt: skip
