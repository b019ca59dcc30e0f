"""The producer: a seeded plan of mixed jobs, scheduled straight to the server while faults hit.

Each kind of job is one entry of :data:`KINDS`; a new kind (debounced jobs, when
``schedule.debounce`` lands) is one more entry and, if it needs one, one more check in
``_check``. Every call the producer makes is retried in a bounded way (:func:`retry`): the
server it talks to is killed and restarted under it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from kitcn_temporal import CRPCError, KitcnClient

T = TypeVar("T")
#: Bounds on one producer call across a server restart: tries, and seconds in all.
RETRY_TRIES = 40
RETRY_BUDGET_S = 90.0
#: Codes that a retry cannot change: the call itself is wrong.
FINAL_CODES = {"BAD_REQUEST", "CONFLICT", "NOT_FOUND", "FORBIDDEN", "PAYLOAD_TOO_LARGE"}
#: In-flight producer calls at once.
IN_FLIGHT = 16
RUNTIME_CRON = "chaos runtime tick"
DECLARED_CRON = "chaos tick"


class GaveUp(RuntimeError):
    """A producer call failed on every bounded try."""


async def retry(call: Callable[[], Awaitable[T]], stats: Stats) -> T:
    """``call()``, tried again after a transport or server error, within the bounds above."""
    deadline = time.monotonic() + RETRY_BUDGET_S
    for attempt in range(RETRY_TRIES):
        try:
            return await call()
        except CRPCError as err:
            if err.code in FINAL_CODES:
                raise
            last: Exception = err
        except Exception as err:  # RPCError (server down), a reset connection, a timeout
            last = err
        stats.retries += 1
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(min(0.2 * 2**attempt, 3.0))
    raise GaveUp(f"gave up after {attempt + 1} tries: {type(last).__name__}: {last}")


@dataclass
class Stats:
    retries: int = 0
    gave_up: list[str] = field(default_factory=list)
    #: A keyed call that returned another id than the first call with the same key.
    key_mismatches: list[str] = field(default_factory=list)


@dataclass
class Issued:
    """A job the producer got an id for."""

    job_id: str
    kind: str
    name: str
    #: For ``canceled``: when a cancel call returned (wall clock, s); ``None``: none did.
    canceled_at: float | None = None


@dataclass(frozen=True)
class Planned:
    at_s: float
    kind: str
    index: int
    rng_seed: int


#: kind -> weight in the mix.
KINDS = {
    "now_mutation": 20,
    "now_action": 15,
    "delayed_mutation": 15,
    "delayed_action": 10,
    "canceled": 10,
    "keyed": 15,
    "capped": 10,
    # A key called a few times within its period: one job (the ids agree), one ledger row.
    "debounced": 5,
}


def plan(count: int, span_s: float, seed: int) -> list[Planned]:
    """``count`` jobs of the kinds above, spread at random over ``span_s`` seconds."""
    rng = random.Random(seed)
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=count)
    times = sorted(rng.uniform(0, span_s) for _ in range(count))
    return [Planned(t, kind, i, rng.randrange(2**31)) for i, (t, kind) in enumerate(zip(times, kinds, strict=True))]


@dataclass
class Producer:
    kitcn: KitcnClient
    ledger: str
    #: A mutation holds its transaction this long (ms; for database kills).
    hold_ms: int
    issued: list[Issued] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    async def run(self, jobs: list[Planned], start: float) -> None:
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def one(job: Planned) -> None:
            await asyncio.sleep(max(0.0, start + job.at_s - time.monotonic()))
            async with limit:
                try:
                    await self.schedule(job)
                except (GaveUp, CRPCError) as err:
                    self.stats.gave_up.append(f"{job.kind} #{job.index}: {err}")

        await asyncio.gather(*(one(job) for job in jobs))

    async def _run_after(self, delay_ms: int, name: str, args: dict[str, Any], key: str | None = None) -> str:
        scheduler = self.kitcn.scheduler
        return await retry(lambda: scheduler.run_after(delay_ms, name, args, key=key), self.stats)

    async def schedule(self, job: Planned) -> None:
        rng = random.Random(job.rng_seed)
        act = {"ledger": self.ledger, "duration_ms": rng.randint(50, 1500)}
        write = {"kind": job.kind.removesuffix("_mutation"), "hold_ms": self.hold_ms}
        name, args, delay = "ledger.write", write, 0
        if job.kind == "now_action":
            name, args = "ledger.act", act
        elif job.kind == "delayed_mutation":
            delay = rng.randint(1000, 15000)
        elif job.kind == "delayed_action":
            name, args, delay = "ledger.act", act, rng.randint(1000, 15000)
        elif job.kind == "capped":
            name, args, delay = "capped.hold", {**act, "duration_ms": rng.randint(50, 300)}, rng.randint(0, 3000)
        elif job.kind == "keyed":
            await self._keyed(job, rng.randint(0, 5000), write)
            return
        elif job.kind == "debounced":
            await self._debounced(job, rng, write)
            return
        elif job.kind == "canceled":
            await self._canceled(rng, act, write)
            return
        self.issued.append(Issued(await self._run_after(delay, name, args), job.kind, name))

    async def _keyed(self, job: Planned, delay: int, args: dict[str, Any]) -> None:
        """The same key asked for twice: one job id, one run."""
        key = f"chaos-{job.index}"
        first = await self._run_after(delay, "ledger.write", args, key)
        self.issued.append(Issued(first, "keyed", "ledger.write"))
        again = await self._run_after(delay, "ledger.write", args, key)
        if again != first:
            self.stats.key_mismatches.append(f"key {key}: {first} then {again}")

    async def _debounced(self, job: Planned, rng: random.Random, args: dict[str, Any]) -> None:
        """A debounce key called 2 to 4 times, 100 ms apart, with a 3 s period: each distinct job
        id it returns is a job (normally one) that writes one ledger row."""
        key, scheduler, seen = f"chaos-debounce-{job.index}", self.kitcn.scheduler, set()
        for call in range(rng.randint(2, 4)):
            write = {**args, "kind": f"debounced-{call}"}
            job_id = await retry(
                partial(scheduler.run_debounced, key, 3000, "ledger.write", write, max_wait=10_000), self.stats
            )
            if job_id not in seen:
                seen.add(job_id)
                self.issued.append(Issued(job_id, "debounced", "ledger.write"))
            await asyncio.sleep(0.1)

    async def _canceled(self, rng: random.Random, act: dict[str, Any], write: dict[str, Any]) -> None:
        """Due in 20 to 40 s, canceled within 3 s: it must never run."""
        name, args = ("ledger.act", act) if rng.random() < 0.5 else ("ledger.write", {**write, "kind": "canceled"})
        issued = Issued(await self._run_after(rng.randint(20000, 40000), name, args), "canceled", name)
        self.issued.append(issued)
        await asyncio.sleep(rng.uniform(0.2, 3.0))
        await retry(lambda: self.kitcn.scheduler.cancel(issued.job_id), self.stats)
        issued.canceled_at = time.time()

    async def start_crons(self, interval_ms: int) -> None:
        """The runtime cron, registered by a mutation job (its change rides the mutation's record)."""
        args = {"name": RUNTIME_CRON, "interval_ms": interval_ms}
        job_id = await self._run_after(0, "ledger.register_cron", args)
        self.issued.append(Issued(job_id, "setup", "ledger.register_cron"))

    async def stop_crons(self) -> None:
        """No cron run starts after this (runs under way finish)."""
        client = self.kitcn.client
        for name in (RUNTIME_CRON, DECLARED_CRON):
            handle = client.get_schedule_handle(f"kitcn-cron:{name}")
            try:
                await retry(handle.delete, self.stats)
            except GaveUp as err:
                self.stats.gave_up.append(f"deleting cron {name!r}: {err}")
