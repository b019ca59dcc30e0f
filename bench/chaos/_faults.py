"""The nemesis: at seeded random times it SIGKILLs workers, kills -9 the server, cuts the network
and (on PostgreSQL) terminates the app's database sessions; a supervisor restarts workers that
died on their own. One fault at a time; every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]

from ._procs import Server, Worker
from ._proxy import Proxy

KINDS = ("worker_kill", "server_restart", "partition", "db_kill")
#: Kills of the app's sessions in one database fault, and the pause between them.
DB_KILL_BURST = 6
DB_KILL_PAUSE_S = 0.3
#: Seconds at least between the end of one fault and the next.
MIN_GAP_S = 4.0


@dataclass
class Tally:
    worker_kills: int = 0
    server_restarts: int = 0
    partitions: int = 0
    #: Partitions that held bytes rather than resetting connections (``partitions`` counts both).
    stalls: int = 0
    db_kills: int = 0
    #: Database sessions terminated in all (``db_kills`` counts faults).
    db_sessions_killed: int = 0
    #: Workers that exited on their own (not killed by the run), restarted by the supervisor.
    worker_exits: int = 0
    #: ``(seconds since the load began, fault, detail)``.
    log: list[tuple[float, str, str]] = field(default_factory=list)


def fault_plan(span_s: float, every_s: float, rng: random.Random, kinds: tuple[str, ...]) -> list[tuple[float, str]]:
    """Each kind once, then one more fault every ``every_s`` seconds on average, at random times."""
    extra = max(0, int(span_s / every_s) - len(kinds))
    chosen = list(kinds) + rng.choices(kinds, weights=[4 if k == "worker_kill" else 2 for k in kinds], k=extra)
    rng.shuffle(chosen)
    times = sorted(rng.uniform(1.0, max(1.0, span_s - 2.0)) for _ in chosen)
    return list(zip(times, chosen, strict=True))


@dataclass
class Nemesis:
    server: Server
    workers: list[Worker]
    proxy: Proxy
    rng: random.Random
    #: An admin connection URL and the app's role, on PostgreSQL.
    database: tuple[str, str] | None = None
    tally: Tally = field(default_factory=Tally)
    _busy: set[int] = field(default_factory=set)

    async def run(self, plan: list[tuple[float, str]], start: float) -> None:
        ended = 0.0
        for at_s, kind in plan:
            # Room after each fault for the workers to reconnect, so that the next one bites.
            await asyncio.sleep(max(0.0, start + at_s - time.monotonic(), ended + MIN_GAP_S - time.monotonic()))
            detail = await getattr(self, kind)()
            self.tally.log.append((round(time.monotonic() - start, 1), kind, detail))
            ended = time.monotonic()

    async def worker_kill(self) -> str:
        worker = self.rng.choice([w for w in self.workers if w.alive] or self.workers)
        self._busy.add(worker.index)
        try:
            pid = worker.kill() if worker.alive else 0
            self.tally.worker_kills += 1
            down = self.rng.uniform(0.2, 3.0)
            await asyncio.sleep(down)
            await worker.start()
        finally:
            self._busy.discard(worker.index)
        return f"worker {worker.index} pid {pid}, down {down:.1f}s"

    async def server_restart(self) -> str:
        self.server.kill()
        self.tally.server_restarts += 1
        down = self.rng.uniform(1.0, 5.0)
        await asyncio.sleep(down)
        await self.server.start()
        return f"down {down:.1f}s"

    async def partition(self) -> str:
        """Half the time a cut (connections reset, new ones refused), half a stall (bytes held)."""
        stall = self.rng.random() < 0.5
        hit = self.proxy.stall() if stall else await self.proxy.cut()
        self.tally.partitions += 1
        self.tally.stalls += stall
        lasts = self.rng.uniform(2.0, 8.0)
        await asyncio.sleep(lasts)
        await self.proxy.heal()
        how = "held" if stall else "reset, new ones refused"
        return f"{hit} connections {how} for {lasts:.1f}s"

    async def db_kill(self) -> str:
        if self.database is None:
            return "skipped: SQLite"
        admin, role = self.database
        conn = await asyncpg.connect(admin, timeout=5)
        killed = 0
        try:
            for i in range(DB_KILL_BURST):
                # Sessions inside a transaction first (mutations mid-commit); the last round all.
                busy = "" if i == DB_KILL_BURST - 1 else "AND state <> 'idle'"
                killed += len(
                    await conn.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE usename = $1 AND pid <> pg_backend_pid() {busy}",
                        role,
                    )
                )
                await asyncio.sleep(DB_KILL_PAUSE_S)
        finally:
            await conn.close()
        self.tally.db_kills += 1
        self.tally.db_sessions_killed += killed
        return f"{killed} sessions terminated"

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart a worker that exited on its own (a fatal worker error), until ``stop``."""
        while not stop.is_set():
            for worker in self.workers:
                if worker.index not in self._busy and not worker.alive:
                    self.tally.worker_exits += 1
                    self.tally.log.append((0.0, "worker_exit", f"worker {worker.index}: see its .err file"))
                    self._busy.add(worker.index)
                    try:
                        await worker.start()
                    finally:
                        self._busy.discard(worker.index)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
