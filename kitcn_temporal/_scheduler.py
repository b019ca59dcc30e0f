"""The scheduler: ``run_after / run_at / cancel``, atomic in mutations, immediate elsewhere."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ._errors import CRPCError
from ._jobs import MAX_JOB_ARGS_BYTES, Jobs, NewJob, exec_options, now_ms
from ._names import check_job_id
from ._runtime import encode_args
from ._wire import timedelta_to_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from ._app import App

#: At most this many schedule calls per procedure execution (Convex's limit).
MAX_SCHEDULE_CALLS = 1000
#: At most this many bytes of arguments scheduled per procedure execution.
MAX_TOTAL_ARGS_BYTES = 8 * 1024 * 1024
#: How far ahead a job may be scheduled.
MAX_AHEAD = timedelta(days=5 * 365 + 1)
#: Concurrent start requests when a mutation's buffered jobs are started.
_FLUSH_CONCURRENCY = 32
_JOB_ID_NAMESPACE = uuid.UUID("6f0d1a8e-4c1b-4c0e-9a57-2b1f6a9e7c31")

Mode = Literal["none", "buffered", "immediate"]


class Unit:
    """One execution unit and what it schedules.

    ``buffered``: a mutation; schedules and cancels wait in :attr:`intents` until the
    mutation succeeds, then :meth:`flush` applies them under job ids derived from the
    execution id, so a retried attempt re-creates the same ids and starts nothing twice.
    ``immediate``: an action or a client; every call takes effect at once.
    ``none``: a query; scheduling is refused.
    """

    def __init__(
        self,
        mode: Mode,
        exec_id: str,
        jobs: Jobs,
        *,
        job_id: str | None = None,
        parent: Unit | None = None,
    ) -> None:
        self.mode: Mode = mode
        self.exec_id = exec_id
        self.jobs = jobs
        #: The job this unit runs as (an action's own job, checked for cancel requests).
        self.job_id = job_id
        #: The action that started this unit in-process (its cancel request applies here too).
        self.parent = parent
        self.schedule_calls = 0
        self.args_bytes = 0
        self.intents: list[NewJob | str] = []
        self.cancel_requested = False
        #: Set by the database store while a transaction is open for this unit.
        self.db: AsyncSession | None = None

    def session(self, app: App, *, readonly: bool) -> AsyncSession:
        """The unit's open database session (``ctx.db``)."""
        if app.store is None:
            raise RuntimeError(
                "ctx.db needs a database: create the app with "
                "App(..., database='sqlite+aiosqlite:///app.db')"
            )
        if self.db is None:
            raise RuntimeError("ctx.db is only available while the procedure runs")
        return self.db

    async def is_cancel_requested(self) -> bool:
        """Whether the job running this unit was asked to cancel (then new jobs start canceled)."""
        if self.cancel_requested:
            return True
        if self.parent is not None:
            self.cancel_requested = await self.parent.is_cancel_requested()
        if not self.cancel_requested and self.job_id is not None:
            self.cancel_requested = await self.jobs.cancel_requested(self.job_id)
        return self.cancel_requested

    def next_job_id(self) -> str:
        if self.mode == "buffered":
            # The n-th schedule call of this execution: the same id on every attempt.
            return str(uuid.uuid5(_JOB_ID_NAMESPACE, f"{self.exec_id}/{self.schedule_calls}"))
        return str(uuid.uuid4())

    async def flush(self) -> None:
        """Apply a succeeded mutation's schedules and cancels (idempotent)."""
        if not self.intents:
            return
        canceled = await self.is_cancel_requested() if self.parent else False
        buffered = {i.id for i in self.intents if isinstance(i, NewJob)}
        cancels = {i for i in self.intents if isinstance(i, str)}
        starts = [
            NewJob(j.id, j.name, j.options, j.args, j.scheduled_time, canceled=True)
            if canceled or j.id in cancels
            else j
            for j in self.intents
            if isinstance(j, NewJob)
        ]
        limit = asyncio.Semaphore(_FLUSH_CONCURRENCY)

        async def start(job: NewJob) -> None:
            async with limit:
                await self.jobs.start(job)

        await asyncio.gather(*(start(j) for j in starts))
        for job_id in cancels - buffered:
            try:
                await self.jobs.cancel(job_id)
            except CRPCError as err:  # gone since the call checked it: nothing left to cancel
                if err.code != "NOT_FOUND":
                    raise
        self.intents.clear()


class Scheduler:
    """Schedules procedures by name: ``ctx.scheduler.run_after(5000, "orders.charge", {...})``.

    From a mutation, schedules and cancels are atomic: they take effect only if the
    mutation succeeds. From an action or a client they take effect at once.
    """

    def __init__(
        self, app: App, unit: Unit, *, readonly: bool = False, public_only: bool = False
    ) -> None:
        self._app = app
        self._unit = unit
        self._readonly = readonly or unit.mode == "none"
        self._public_only = public_only

    async def run_after(self, delay: float | timedelta, name: str, args: Any = None) -> str:
        """Run ``name`` after ``delay`` (ms, or a timedelta); returns the job id."""
        return await self.schedule(name, due_after(delay, name), args)

    async def run_at(self, timestamp: float | datetime, name: str, args: Any = None) -> str:
        """Run ``name`` at ``timestamp`` (ms since the epoch, or an aware datetime); returns the job id."""
        return await self.schedule(name, due_at(timestamp, name), args)

    async def cancel(self, job_id: str) -> None:
        """Cancel a job: pending -> canceled; running -> keeps running; finished -> nothing.

        An unknown id raises ``CRPCError(NOT_FOUND)``.
        """
        unit = self._unit
        self._refuse_in_query("cancel")
        check_job_id(job_id)
        if unit.mode == "buffered":
            if not any(isinstance(i, NewJob) and i.id == job_id for i in unit.intents):
                await unit.jobs.require(job_id)
            unit.intents.append(job_id)
        else:
            await unit.jobs.cancel(job_id)

    async def schedule(self, name: str, due_ms: int, args: Any) -> str:
        """Schedule procedure ``name`` to run at ``due_ms``; returns the job id."""
        unit = self._unit
        self._refuse_in_query("schedule")
        proc = self._app.get(name)
        if self._public_only and proc.internal:
            raise CRPCError("FORBIDDEN", f"{name} is a private procedure: this client may not schedule it")
        if proc.kind == "query":
            raise CRPCError("BAD_REQUEST", f"{name} is a query: queries cannot be scheduled")
        payload, size = encode_args(proc, name, args)
        if size > MAX_JOB_ARGS_BYTES:
            raise CRPCError(
                "PAYLOAD_TOO_LARGE",
                f"arguments of {name} are {size} bytes: one job's arguments must fit in "
                f"{MAX_JOB_ARGS_BYTES} bytes (Temporal's payload limit)",
            )
        if unit.schedule_calls + 1 > MAX_SCHEDULE_CALLS:
            raise CRPCError(
                "BAD_REQUEST",
                f"too many schedule calls: one execution may schedule at most {MAX_SCHEDULE_CALLS} functions",
            )
        if unit.args_bytes + size > MAX_TOTAL_ARGS_BYTES:
            raise CRPCError(
                "PAYLOAD_TOO_LARGE",
                f"scheduling {name} would bring this execution's scheduled arguments to "
                f"{unit.args_bytes + size} bytes, over the {MAX_TOTAL_ARGS_BYTES}-byte limit",
            )
        job = NewJob(unit.next_job_id(), name, exec_options(self._app, proc), payload, due_ms)
        if unit.mode == "buffered":
            unit.intents.append(job)
        else:
            if await unit.is_cancel_requested():
                job = NewJob(job.id, job.name, job.options, job.args, job.scheduled_time, canceled=True)
            await unit.jobs.start(job)
        unit.schedule_calls += 1
        unit.args_bytes += size
        return job.id

    def _refuse_in_query(self, what: str) -> None:
        if self._readonly:
            raise CRPCError("BAD_REQUEST", f"a query cannot {what} functions: use a mutation or an action")


def due_after(delay: Any, name: str) -> int:
    """Due time in ms for ``schedule.after(delay)``: a finite delay >= 0, in ms or a timedelta."""
    if isinstance(delay, timedelta):
        ms = delay.total_seconds() * 1000
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        ms = float(delay)
    else:
        raise CRPCError(
            "BAD_REQUEST",
            f"delay for {name} must be milliseconds (a number) or a timedelta, not {type(delay).__name__}",
        )
    if not math.isfinite(ms) or ms < 0:
        raise CRPCError("BAD_REQUEST", f"delay for {name} must be finite and >= 0 ms, not {delay!r}")
    return _check_horizon(now_ms() + round(ms), name)


def due_at(timestamp: Any, name: str) -> int:
    """Due time in ms for ``schedule.at(ts)``: ms since the epoch or a timezone-aware datetime."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise CRPCError(
                "BAD_REQUEST",
                f"time for {name} is a naive datetime: give it a timezone (e.g. tzinfo=timezone.utc)",
            )
        due = round(timestamp.timestamp() * 1000)
    elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        if not math.isfinite(timestamp):
            raise CRPCError("BAD_REQUEST", f"time for {name} must be finite, not {timestamp!r}")
        due = round(timestamp)
    else:
        raise CRPCError(
            "BAD_REQUEST",
            f"time for {name} must be ms since the epoch or an aware datetime, not {type(timestamp).__name__}",
        )
    return _check_horizon(due, name)


def _check_horizon(due: int, name: str) -> int:
    limit = now_ms() + timedelta_to_ms(MAX_AHEAD)
    if due > limit:
        raise CRPCError("BAD_REQUEST", f"{name} cannot be scheduled more than 5 years ahead")
    return due
