"""A job's procedure inside its workflow: its attempts, through cancels and deploys.

Deterministic code, like the workflows that use it (see :mod:`kitcn_temporal.jobs._workflow`):
:class:`Execution` starts the procedure's activity and acts on how it ends; the helpers
start activities, turn their failures into the job's, and record its state.

Layer: jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import Priority, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutError,
    TimeoutType,
)

from .._wire import (
    CANCELED_ERROR,
    EXPIRED_ERROR,
    KIND_CHANGED_ERROR,
    MEMO_ERROR,
    MEMO_WAITING,
    NEEDS_SLOT_ERROR,
    NOT_COMMITTED_ERROR,
    SA_STATE,
    TRANSIENT_ACTION_ERROR,
    UNKNOWN_PROCEDURE_ERROR,
    ExecInput,
    ExecOptions,
    JobSpec,
    StateKind,
    ms_to_datetime,
)
from ..capacity._passage import Slot
from ._start import ANY_WORKER_ACTIVITY, start_procedure

#: A job whose procedure changed kind is run again under the new kind at most this often
#: (during a rolling deploy, workers of both versions may take turns).
_MAX_REROUTES = 5
#: Waits between tries of a job whose procedure no worker knows: doubling, up to the last.
_UNKNOWN_BACKOFF = (timedelta(seconds=1), timedelta(seconds=30))


class Execution:
    """Runs a job's procedure until the job has an outcome, through cancels and deploys.

    * A cancel request never interrupts a running action (it is told, and runs to its end);
      a query or mutation gets no new attempt, and one whose handler has returned commits.
    * A procedure no worker knows (removed or renamed by a deploy) is tried again, as an
      activity any worker of the task queue may take, until the grace period of the worker
      that found it unknown ends; then the job fails naming it.
    * A procedure whose kind changed since the job was scheduled runs under its current
      definition (an action that used to be a mutation runs at most once).
    """

    def __init__(
        self,
        name: str,
        options: ExecOptions,
        inp: ExecInput,
        updates: list[SearchAttributeUpdate[Any]],
        slot: Slot,
        spec: JobSpec | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.inp = inp
        self.updates = updates
        #: The procedure's gate: a capped or paused procedure runs once it lets the job through.
        self.slot = slot
        self.cancel_requested = False
        self.in_progress = False
        #: When a worker first said it does not know the procedure, and the grace it gives.
        self.unknown: tuple[datetime, timedelta] | None = None
        self.unknown_tries = 0
        self.reroutes = 0
        #: The job (``None`` for a direct call): its ``ttl`` and fairness.
        self.spec = spec
        #: Not started by then, the job expires (``schedule.options(ttl=)``); ``None``: never.
        self.deadline = None if spec is None or inp.scheduled_time is None else job_deadline(spec, inp.scheduled_time)

    async def outcome(self) -> Any:
        try:
            if self.options.gated:
                await self._through_gate()
            return await self._attempts()
        finally:
            await self.slot.release()

    async def _through_gate(self) -> None:
        """Wait (pending) until the procedure's gate lets the job through; a cancel meanwhile
        ends it canceled before any attempt."""
        if self.in_progress:  # an action refused for want of a slot is pending again
            self.in_progress = False
            self.updates.append(SA_STATE.value_set("pending"))
        if self.updates:
            workflow.upsert_search_attributes(self.updates)
            self.updates = []
        spec, deadline = self.spec, self.deadline
        try:
            if spec is not None and deadline is not None:  # a slot past its ttl: the job expires
                await self.slot.acquire(lambda granted: wait_or_expire(granted, spec, deadline))
            else:
                await self.slot.acquire()
        except asyncio.CancelledError:
            self.cancel_requested = True
            record_state("canceled", [])
            raise

    async def _attempts(self) -> Any:
        while True:
            if self.options.kind == "action" and not self.in_progress:
                self.in_progress = True
                self.updates.append(SA_STATE.value_set("inProgress"))
            if self.updates:
                workflow.upsert_search_attributes(self.updates)
                self.updates = []
            left = self._time_left()  # expired before it could start: it never runs
            try:
                result = await self._attempt(left)
            except FailureError as err:
                cause = _cause(err)
                refused = isinstance(cause, ApplicationError) and cause.type == CANCELED_ERROR
                if refused or (self.cancel_requested and isinstance(cause, CancelledError)):
                    self.cancel_requested = True
                    return await self._end_canceled()
                if needs_slot(err) and not self.slot.passed:
                    await self._through_gate()  # capped since it was scheduled, or paused
                    continue
                await self._before_trying_again(err)
                continue
            if self.unknown is not None:
                workflow.upsert_memo({MEMO_WAITING: None})
            record_state("success", [])
            return result

    async def _attempt(self, left: timedelta | None) -> Any:
        remote = f"{ANY_WORKER_ACTIVITY}{self.unknown_tries}" if self.unknown is not None else None
        handle = start_procedure(
            self.name,
            self.options,
            self._input(),
            remote=remote,
            schedule_to_start=left,
            priority=Priority.default if self.spec is None else self.spec.priority_of(),
        )
        while True:
            try:
                # A cancel request does not stop a running procedure: its outcome is recorded.
                return await asyncio.shield(handle)
            except asyncio.CancelledError:
                if self.cancel_requested:
                    if handle.cancelled():  # canceled in the same task that started it: it never ran
                        raise CancelledError("canceled before it started") from None
                    raise
                self.cancel_requested = True
                # An action is told (it keeps running; what it schedules from now on is created
                # canceled); a query or mutation gets no new attempt. Both report their end.
                handle.cancel()

    def _time_left(self) -> timedelta | None:
        """How long the procedure may still wait to start (``None``: no ttl); expired: fails."""
        if self.deadline is None or self.spec is None:
            return None
        left = self.deadline - workflow.now()
        if left <= timedelta(0):
            expire(self.spec)
        return left

    def _input(self, **changes: Any) -> ExecInput:
        return dataclasses.replace(self.inp, kind=self.options.kind, slot=self.slot.passed, **changes)

    async def _end_canceled(self) -> Any:
        """The cancel stopped the procedure: ``canceled``, unless an attempt had committed.

        A mutation attempt may have committed and then lost its worker before reporting: a
        last activity that runs no code looks for its record and, if found, starts its jobs.
        """
        if self.options.kind != "action":
            try:
                result = await start_procedure(self.name, self.options, self._input(recover_only=True))
            except FailureError as err:
                cause = _cause(err)
                if not (isinstance(cause, ApplicationError) and cause.type == NOT_COMMITTED_ERROR):
                    raise
            else:
                record_state("success", [])
                return result
        record_state("canceled", [])
        # A retry that found the job canceled can come before the request reaches this
        # workflow: the job closes canceled once it has.
        await workflow.wait_condition(lambda: workflow.cancellation_reason() is not None)
        raise asyncio.CancelledError()

    async def _before_trying_again(self, err: FailureError) -> None:
        """Wait before the procedure runs again, or raise the job's failure if it will not."""
        cause = _cause(err)
        if self.spec is not None and isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
            expire(self.spec)  # waited for a worker (or the queue's rate limit) past its ttl
        if isinstance(cause, ApplicationError) and cause.type == UNKNOWN_PROCEDURE_ERROR:
            await self._wait_for_a_worker_that_knows(cause)
        elif isinstance(cause, ApplicationError) and cause.type == KIND_CHANGED_ERROR:
            await self._reroute(cause)
        else:
            self._fail(job_failure(self.name, self.options, err))

    async def _wait_for_a_worker_that_knows(self, cause: ApplicationError) -> None:
        now = workflow.now()
        if self.unknown is None:
            grace = timedelta(milliseconds=int(_details(cause).get("grace_ms", 0)))
            self.unknown = (now, grace)
            if grace > timedelta(0):
                until = (now + grace).strftime("%Y-%m-%d %H:%M:%S UTC")
                workflow.upsert_memo({MEMO_WAITING: f"{cause.message}: waiting until {until} for one that does"})
        since, grace = self.unknown
        left = since + grace - now
        if left <= timedelta(0):
            waited = f" (waited {_span(grace)} for a worker that knows it)" if grace else ""
            self._fail(_job_error(f"{cause.message}: it was removed or renamed{waited}"))
        first, longest = _UNKNOWN_BACKOFF
        self.unknown_tries += 1
        await self._pause(min(left, first * 2 ** min(self.unknown_tries - 1, 10), longest))

    async def _reroute(self, cause: ApplicationError) -> None:
        current = ExecOptions.from_dict(_details(cause).get("options"))
        if current is None or self.reroutes >= _MAX_REROUTES:
            self._fail(_job_error(f"{cause.message}, and keeps changing between workers: schedule it again"))
        if self.reroutes:  # workers of two versions take turns: give the deploy time to end
            await self._pause(timedelta(seconds=2 ** (self.reroutes - 1)))
        self.reroutes += 1
        self.options = current

    async def _pause(self, span: timedelta) -> None:
        try:
            await workflow.sleep(span)
        except asyncio.CancelledError:
            self.cancel_requested = True
            record_state("canceled", [])
            raise

    def _fail(self, failure: ApplicationError) -> NoReturn:
        record_state("failed", [], failure.message)
        raise failure


def needs_slot(err: FailureError) -> bool:
    """Whether an attempt was refused for want of a pass through the procedure's gate."""
    cause = _cause(err)
    return isinstance(cause, ApplicationError) and cause.type == NEEDS_SLOT_ERROR


def _cause(err: FailureError) -> BaseException | None:
    """What made an attempt fail (local activities fail without an ActivityError wrapper)."""
    return err.cause if isinstance(err, ActivityError) else err


def _details(err: ApplicationError) -> dict[str, Any]:
    first = err.details[0] if err.details else None
    return first if isinstance(first, dict) else {}


def _job_error(message: str) -> ApplicationError:
    return ApplicationError(message, type="KitcnJobError", non_retryable=True)


def _span(span: timedelta) -> str:
    """``10m``, ``1h30m``, ``45s``: a grace period as people write it."""
    seconds = int(span.total_seconds())
    parts = [
        f"{n}{unit}" for n, unit in ((seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")) if n
    ]
    return "".join(parts) or f"{span.total_seconds():g}s"


#: The failure type the SDK reports for an activity its stopping worker cut off.
_WORKER_SHUTDOWN = "WorkerShutdown"


def job_failure(name: str, options: ExecOptions, err: FailureError) -> ApplicationError:
    """The job's failure: the procedure's own error, or why the procedure could not finish."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type == _WORKER_SHUTDOWN and options.kind == "action":
        message = f"{TRANSIENT_ACTION_ERROR} {name}: its worker shut down before it finished"
        return ApplicationError(message, type="KitcnJobError", non_retryable=True)
    if isinstance(cause, ApplicationError):
        return ApplicationError(
            cause.message,
            *cause.details,
            type=cause.type,
            non_retryable=True,
            category=cause.category,
        )
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
        message = f"{TRANSIENT_ACTION_ERROR} {name}: its worker stopped responding"
    elif isinstance(cause, TimeoutError):
        message = f"{name} timed out after {options.timeout_ms / 1000:g}s"
        if options.kind == "action":
            message = f"{TRANSIENT_ACTION_ERROR} {name}: {message}"
    else:
        message = f"{name} failed: {cause or err}"
    return ApplicationError(message, type="KitcnJobError", non_retryable=True)


def job_deadline(spec: JobSpec, scheduled_ms: int) -> datetime | None:
    """When a job due at ``scheduled_ms`` expires if it has not started (``None``: no ttl)."""
    return None if spec.ttl_ms is None else ms_to_datetime(scheduled_ms + spec.ttl_ms)


def expired_failure(spec: JobSpec) -> ApplicationError:
    """The failure of a job that did not start within its ttl: it never runs."""
    ttl = _span(timedelta(milliseconds=spec.ttl_ms or 0))
    return ApplicationError(
        f"{spec.name} expired: it had not started {ttl} after its due time (schedule.options(ttl=...)), "
        "so it never ran",
        type=EXPIRED_ERROR,
        non_retryable=True,
    )


def expire(spec: JobSpec) -> NoReturn:
    """End the job ``failed`` as expired (its state recorded, its failure raised)."""
    failure = expired_failure(spec)
    record_state("failed", [], failure.message)
    raise failure


async def wait_or_expire(condition: Callable[[], bool], spec: JobSpec, deadline: datetime | None) -> None:
    """Wait for ``condition`` before the procedure starts (a worker, a slot, the end of a pause),
    but not past the job's ``deadline``: then the job ends ``failed`` as expired."""
    if deadline is None:
        await workflow.wait_condition(condition)
        return
    left = deadline - workflow.now()
    if left <= timedelta(0) and not condition():
        expire(spec)
    try:
        await workflow.wait_condition(condition, timeout=max(left, timedelta(milliseconds=1)))
    except asyncio.TimeoutError:
        expire(spec)


def record_state(state: StateKind, updates: list[SearchAttributeUpdate[Any]], error: str | None = None) -> None:
    workflow.upsert_search_attributes([*updates, SA_STATE.value_set(state)])
    if error is not None:
        workflow.upsert_memo({MEMO_ERROR: error})
