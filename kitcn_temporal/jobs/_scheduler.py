"""The scheduler: ``run_after / run_at / cancel``, atomic in mutations, immediate elsewhere.

Layer: jobs: fills a :class:`~kitcn_temporal.jobs._unit.Unit`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._errors import CRPCError
from .._wire import Debounce, NewJob, completion, keyed_job_id, ms_to_datetime, now_ms, timedelta_to_ms
from ..capacity._keys import concurrency_key
from ..procedures._codec import encode_job_args, validate_input
from ..procedures._names import check_job_id, check_key
from ..procedures._procedures import Procedure, check_priority
from ._flow import MAX_AHEAD, as_float, debounce_conflict, debounce_of, fairness_of, ttl_ms
from ._unit import Unit

if TYPE_CHECKING:
    from .._app import App

#: At most this many schedule calls per procedure execution (Convex's limit).
MAX_SCHEDULE_CALLS = 1000
#: At most this many bytes of arguments scheduled per procedure execution.
MAX_TOTAL_ARGS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ScheduleOptions:
    """How a job is scheduled beyond its time: ``schedule.options(key=, priority=, on_complete=)``."""

    #: Idempotency key: the same key always gives the same job.
    key: str | None = None
    #: Temporal task priority, 1 (first) to 5 (last).
    priority: int | None = None
    #: A mutation (or its name) run once the job has ended.
    on_complete: Procedure | str | None = None
    #: Not started this long after its due time (ms or a timedelta), the job expires: ``failed``.
    ttl: float | timedelta | None = None
    #: Temporal task-queue fairness: the job's key (a tenant's) and its share.
    fairness_key: str | None = None
    fairness_weight: float | None = None


class Scheduler:
    """Schedules procedures by name: ``ctx.scheduler.run_after(5000, "orders.charge", {...})``.

    From a mutation, schedules and cancels are atomic: they take effect only if the
    mutation succeeds. From an action or a client they take effect at once.
    """

    def __init__(self, app: App, unit: Unit, *, readonly: bool = False, public_only: bool = False) -> None:
        self._app = app
        self._unit = unit
        self._readonly = readonly or unit.mode == "none"
        self._public_only = public_only

    @property
    def app(self) -> App:
        """The app whose procedures it schedules."""
        return self._app

    @property
    def task_queue(self) -> str:
        """Where the jobs it starts run (the app's queue, or its client's)."""
        return self._unit.jobs.task_queue or self._app.task_queue

    @property
    def immediate(self) -> bool:
        """Whether schedules take effect at once (an action or a client), not with a mutation."""
        return self._unit.mode == "immediate"

    async def run_after(
        self,
        delay: float | timedelta,
        name: str,
        args: Any = None,
        *,
        key: str | None = None,
        priority: int | None = None,
        on_complete: Procedure | str | None = None,
        ttl: float | timedelta | None = None,
        fairness_key: str | None = None,
        fairness_weight: float | None = None,
    ) -> str:
        """Run ``name`` after ``delay`` (ms, or a timedelta); returns the job id.

        :param key: an idempotency key: the same key always gives the same job, started once
            (another function or other arguments under it: ``CRPCError(CONFLICT)``).
        :param priority: Temporal task priority, 1 (first) to 5 (last); default the
            procedure's ``.priority()``, else the server's (3).
        :param on_complete: a mutation run once the job has ended, whatever its state, with
            ``{"job_id", "name", "state": {"kind", "error"}, "result"}``.
        :param ttl: not started within ``ttl`` (ms or a timedelta) of its due time, the job ends
            ``failed`` as expired and never runs (its ``on_complete`` runs).
        :param fairness_key: Temporal task-queue fairness: jobs of each key (a tenant id, 1 to
            64 bytes) get turns, so one key's backlog does not starve another's; default the
            procedure's ``.fairness(key=)``.
        :param fairness_weight: the key's share, 0.001 to 1000 (default 1).
        """
        options = ScheduleOptions(key, priority, on_complete, ttl, fairness_key, fairness_weight)
        return await self.schedule(name, due_after(delay, name), args, options)

    async def run_at(
        self,
        timestamp: float | datetime,
        name: str,
        args: Any = None,
        *,
        key: str | None = None,
        priority: int | None = None,
        on_complete: Procedure | str | None = None,
        ttl: float | timedelta | None = None,
        fairness_key: str | None = None,
        fairness_weight: float | None = None,
    ) -> str:
        """Run ``name`` at ``timestamp`` (ms since the epoch, or an aware datetime); returns the job id.

        Takes the keywords of :meth:`run_after`.
        """
        options = ScheduleOptions(key, priority, on_complete, ttl, fairness_key, fairness_weight)
        return await self.schedule(name, due_at(timestamp, name), args, options)

    async def run_debounced(
        self,
        key: str,
        period: float | timedelta,
        name: str,
        args: Any = None,
        *,
        max_wait: float | timedelta | None = None,
        priority: int | None = None,
        on_complete: Procedure | str | None = None,
        ttl: float | timedelta | None = None,
        fairness_key: str | None = None,
        fairness_weight: float | None = None,
    ) -> str:
        """Run ``name`` once calls under debounce ``key`` have paused for ``period`` (ms or a
        timedelta); returns the job id.

        While the key's job has not started, a call returns the same job id, gives it its
        arguments and moves it to ``period`` from now, never later than ``max_wait`` after the
        first call. Once it has started, the next call makes a new job. Takes the other keywords
        of :meth:`run_after` (the job's options come from the call that creates it).
        """
        debounce = debounce_of(key, period, max_wait, name)
        options = ScheduleOptions(None, priority, on_complete, ttl, fairness_key, fairness_weight)
        return await self.schedule(name, debounce.call_ms + debounce.period_ms, args, options, debounce)

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

    async def schedule(
        self,
        name: str,
        due_ms: int,
        args: Any,
        options: ScheduleOptions | None = None,
        debounce: Debounce | None = None,
    ) -> str:
        """Schedule procedure ``name`` to run at ``due_ms`` (debounced under ``debounce``); returns the job id."""
        unit = self._unit
        self._refuse_in_query("schedule")
        proc = self._procedure(name)
        if proc.kind == "query":
            raise CRPCError("BAD_REQUEST", f"{name} is a query: queries cannot be scheduled")
        options = options or ScheduleOptions()
        if debounce is not None and options.key is not None:
            raise CRPCError(
                "BAD_REQUEST",
                f"a debounced job of {name} is found by its debounce key: do not give it an idempotency key too",
            )
        payload, size = encode_job_args(proc, name, args)
        key = None if options.key is None else check_key(options.key, name)
        ttl = None if options.ttl is None else ttl_ms(options.ttl, name)
        fairness_key, fairness_weight = fairness_of(proc, name, args, options)
        priority = (
            proc.priority if options.priority is None else check_priority(options.priority, f"priority of {name}")
        )
        callback = None if options.on_complete is None else self._callback(options.on_complete, name)
        slot_key = concurrency_key(proc, name, payload)
        check_limits(unit, name, size)
        job = NewJob(
            unit.next_job_id(name) if key is None else keyed_job_id(key),
            name,
            self._app.exec_options(proc),
            payload,
            due_ms,
            key=key,
            priority=priority,
            on_complete=None if callback is None else self._app.name_of(callback),
            on_complete_options=None if callback is None else self._app.exec_options(callback),
            args_bytes=size,
            concurrency_key=slot_key,
            ttl_ms=ttl,
            fairness_key=fairness_key,
            fairness_weight=fairness_weight,
            debounce=debounce,
        )
        if debounce is not None:
            return await self._debounce(job, size)
        if unit.mode == "buffered":
            if key is not None and not await self._buffer_keyed(job):
                return job.id  # the same keyed job, asked for twice in one mutation
            unit.intents.append(job)
        else:
            if await unit.is_cancel_requested():
                job = dataclasses.replace(job, canceled=True)
            await unit.jobs.start(job)
        unit.schedule_calls += 1
        unit.args_bytes += size
        return job.id

    async def _debounce(self, job: NewJob, size: int) -> str:
        """Give a debounced job to its key's holder (from a mutation, once it has committed)."""
        unit, debounce = self._unit, job.debounce
        assert debounce is not None
        if unit.mode == "buffered":
            told = await self._buffer_debounced(job)
        elif await unit.is_cancel_requested():  # from a canceled action: a job created canceled
            await unit.jobs.start(dataclasses.replace(job, canceled=True))
            told = job.id
        else:
            told = await unit.jobs.push_debounced(job)
        unit.schedule_calls += 1
        unit.args_bytes += size
        return told

    async def _buffer_debounced(self, job: NewJob) -> str:
        """Buffer a mutation's debounced call; the id returned is its key's pending job's, if any."""
        unit, debounce = self._unit, job.debounce
        assert debounce is not None
        for i, buffered in enumerate(unit.intents):
            earlier = buffered.debounce if isinstance(buffered, NewJob) else None
            if not isinstance(buffered, NewJob) or earlier is None or earlier.key != debounce.key:
                continue
            if buffered.name != job.name:
                raise CRPCError("BAD_REQUEST", debounce_conflict(debounce.key, buffered.name, job.name))
            # The same key twice in one mutation: one call, with the latest arguments.
            told = earlier.told or buffered.id
            unit.intents[i] = dataclasses.replace(
                job, id=buffered.id, debounce=dataclasses.replace(debounce, told=told)
            )
            return told
        pending = await unit.jobs.debounce_pending(debounce.key)
        if pending is not None and pending[1] != job.name:
            raise CRPCError("BAD_REQUEST", debounce_conflict(debounce.key, pending[1], job.name))
        told = job.id if pending is None else pending[0]
        unit.intents.append(dataclasses.replace(job, debounce=dataclasses.replace(debounce, told=told)))
        return told

    def _procedure(self, name: str) -> Procedure:
        proc = self._app.get(name)
        if self._public_only and proc.internal:
            raise CRPCError("FORBIDDEN", f"{name} is a private procedure: this client may not schedule it")
        return proc

    def _callback(self, on_complete: Procedure | str, name: str) -> Procedure:
        """The ``on_complete`` mutation, checked now: it must take what a job's end gives it."""
        callback = self._procedure(
            self._app.name_of(on_complete) if isinstance(on_complete, Procedure) else on_complete
        )
        label = self._app.name_of(callback)
        if callback.kind != "mutation":
            raise CRPCError(
                "BAD_REQUEST",
                f"on_complete of {name} must be a mutation (run exactly once), not the {callback.kind} {label}",
            )
        try:
            validate_input(callback, label, completion("job", name, "success", None, None))
        except CRPCError as err:
            raise CRPCError(
                "BAD_REQUEST",
                f"on_complete {label} of {name} cannot take a job's completion "
                '({"job_id", "name", "state": {"kind", "error"}, "result"}): ' + err.message,
            ) from None
        return callback

    async def _buffer_keyed(self, job: NewJob) -> bool:
        """Whether a mutation's keyed job is new to its buffer; ``CONFLICT`` if its key is taken
        (by another job in the buffer, or by a job already started) for other work."""
        for buffered in self._unit.intents:
            if isinstance(buffered, NewJob) and buffered.id == job.id:
                if (buffered.name, buffered.args) != (job.name, job.args):
                    raise CRPCError(
                        "CONFLICT",
                        f"key {job.key!r} is used twice in this mutation for other work "
                        f"({buffered.name} and {job.name}): one key, one function and arguments",
                    )
                return False
        await self._unit.jobs.check_same_job(job)  # started already: it must be this same job
        return True

    def _refuse_in_query(self, what: str) -> None:
        if self._readonly:
            raise CRPCError("BAD_REQUEST", f"a query cannot {what} functions: use a mutation or an action")


def check_limits(unit: Unit, name: str, size: int) -> None:
    """One more schedule call (a job, or a runtime cron change) of ``size`` bytes of arguments
    must stay within an execution's limits."""
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


#: 2000-01-01T00:00:00Z in ms: an earlier number given to ``at()`` is almost surely seconds.
EARLIEST_AT_MS = 946_684_800_000


def due_after(delay: Any, name: str) -> int:
    """Due time in ms for ``schedule.after(delay)``: a finite delay >= 0, in ms or a timedelta."""
    if isinstance(delay, timedelta):
        ms = delay.total_seconds() * 1000
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        ms = as_float(delay, f"delay for {name}")
    else:
        raise CRPCError(
            "BAD_REQUEST",
            f"delay for {name} must be milliseconds (a number) or a timedelta, not {type(delay).__name__}",
        )
    if not math.isfinite(ms) or ms < 0:
        raise CRPCError("BAD_REQUEST", f"delay for {name} must be finite and >= 0 ms, not {delay!r}")
    return _check_horizon(now_ms() + min(round(ms), _HORIZON_CAP), name)


def due_at(timestamp: Any, name: str) -> int:
    """Due time in ms for ``schedule.at(ts)``: ms since the epoch (from 2000 on) or an aware datetime."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise CRPCError(
                "BAD_REQUEST",
                f"time for {name} is a naive datetime: give it a timezone (e.g. tzinfo=timezone.utc)",
            )
        try:
            due = round(timestamp.timestamp() * 1000)
        except (OverflowError, ValueError):
            due = _EARLIEST_DATETIME_MS - 1
        if due < _EARLIEST_DATETIME_MS:  # within a day of datetime.min, its offset applied
            raise CRPCError("BAD_REQUEST", f"time for {name} is out of range: {timestamp.isoformat()}")
    elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        ms = as_float(timestamp, f"time for {name}")
        if not math.isfinite(ms):
            raise CRPCError("BAD_REQUEST", f"time for {name} must be finite, not {timestamp!r}")
        if ms < EARLIEST_AT_MS:
            raise CRPCError("BAD_REQUEST", _before_2000(timestamp, ms, name))
        due = min(round(ms), _HORIZON_CAP)
    else:
        raise CRPCError(
            "BAD_REQUEST",
            f"time for {name} must be ms since the epoch or an aware datetime, not {type(timestamp).__name__}",
        )
    return _check_horizon(due, name)


#: Larger due times are refused as "more than 5 years ahead" without computing with them.
_HORIZON_CAP = 2**62
#: The earliest due time a datetime can give (0001-01-01 UTC): earlier is out of range.
_EARLIEST_DATETIME_MS = round(datetime.min.replace(tzinfo=timezone.utc).timestamp() * 1000)


def _before_2000(timestamp: float, ms: float, name: str) -> str:
    if ms * 1000 >= EARLIEST_AT_MS:
        meant = round(ms * 1000)
        return (
            f"time for {name} is {timestamp!r} ms since the epoch, before 2000-01-01: that looks like "
            f"seconds; at() takes milliseconds: did you mean {meant} ({ms_to_datetime(meant).isoformat()})?"
        )
    return (
        f"time for {name} is {timestamp!r} ms since the epoch, before 2000-01-01: at() takes milliseconds "
        f"since the epoch (e.g. {EARLIEST_AT_MS} for 2000-01-01) or an aware datetime"
    )


def _check_horizon(due: int, name: str) -> int:
    limit = now_ms() + timedelta_to_ms(MAX_AHEAD)
    if due > limit:
        raise CRPCError("BAD_REQUEST", f"{name} cannot be scheduled more than 5 years ahead")
    return due
