"""The ``_scheduled_functions`` table, read from Temporal's job workflows.

A job's state follows one rule, which both the row of a job (:func:`state_of`) and the
visibility query of each state (:func:`state_query`) are built from, so every read agrees and
the states partition the jobs:

1. a final state (``success``, ``failed``, ``canceled``) the workflow recorded in ``KitcnState``;
2. otherwise, for a closed execution, its status: Completed -> ``success``, Canceled ->
   ``canceled``, anything else (Failed, Terminated, TimedOut) -> ``failed``;
3. otherwise (Running) ``inProgress`` if ``KitcnState`` says so, else ``pending``.

Layer: jobs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from .._errors import CRPCError
from ..capacity import _slots as slots
from ..ops._encryption import decrypting
from ..procedures._names import check_procedure_name
from ._handles import Jobs

if TYPE_CHECKING:
    from ._scheduler import Scheduler

from .._wire import (
    JOB_WORKFLOW,
    MEMO_ERROR,
    MEMO_SPEC,
    MEMO_WAITING,
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    STATE_KINDS,
    StateKind,
    datetime_to_ms,
    key_of,
)

#: The states a job ends in; recorded by the workflow, they override the execution status.
FINAL_STATES: tuple[StateKind, ...] = ("success", "failed", "canceled")
#: What a closed execution means when its workflow recorded no final state.
_CLOSED_STATES: dict[WorkflowExecutionStatus, StateKind] = {
    WorkflowExecutionStatus.COMPLETED: "success",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "failed",
}
#: The names Temporal's list filter gives execution statuses.
_STATUS_NAMES: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.RUNNING: "Running",
    WorkflowExecutionStatus.COMPLETED: "Completed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
}
#: The most rows one ``list`` call returns.
MAX_LIST_LIMIT = 10_000
#: The most rows one ``paginate`` page holds (Temporal's default visibility page limit).
MAX_PAGE_SIZE = 1000
#: First byte of every cursor: bump it if the cursor's layout changes.
_CURSOR_VERSION = b"\x01"
_CURSOR_DIGEST_SIZE = 8


class JobState(BaseModel):
    """A job's state: ``{kind}``, plus ``error`` when failed."""

    #: ``pending`` | ``inProgress`` | ``success`` | ``failed`` | ``canceled``.
    kind: StateKind
    #: Why the job failed (``failed`` only).
    error: str | None = None


class Completion(BaseModel):
    """What an ``on_complete`` mutation receives once its job has ended, whatever its state:
    declare the callback's input with it (``private_mutation.input(Completion)``)."""

    #: The job that ended.
    job_id: str
    #: Its procedure, e.g. ``"orders.charge"``.
    name: str
    #: How it ended: ``success``, ``failed`` (with ``error``) or ``canceled``.
    state: JobState
    #: The procedure's return value (``success`` only).
    result: Any = None


class ScheduledFunction(BaseModel):
    """One row of the ``_scheduled_functions`` table.

    ``model_dump(by_alias=True)`` gives Convex's camelCase names.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    #: The job id (the Temporal workflow id).
    id: str
    #: The procedure, e.g. ``"orders.charge"``.
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    #: When the job is or was due, in ms since the epoch.
    scheduled_time: int
    #: When the job finished, in ms since the epoch; ``None`` while it has not.
    completed_time: int | None = None
    #: When the job was created, in ms since the epoch.
    creation_time: int | None = None
    state: JobState
    #: Why a pending job cannot run yet (e.g. no worker knows its procedure after a deploy).
    waiting: str | None = None
    #: Its idempotency key (``schedule.options(key=...)``), if it was given one.
    key: str | None = None
    #: Its Temporal task priority, 1 (first) to 5 (last), if one was set.
    priority: int | None = None
    #: Its fairness key (``schedule.options(fairness_key=)``, ``.fairness()``, ``.rate_limit(key=)``).
    fairness_key: str | None = None


class PaginationResult(BaseModel):
    """One page of jobs, in Convex's shape (``model_dump(by_alias=True)``: ``isDone``,
    ``continueCursor``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    page: list[ScheduledFunction]
    #: No page follows this one. A page before the last may hold fewer rows than asked
    #: (even none, when the previous one ended exactly at the last row).
    is_done: bool
    #: Pass it as ``cursor=`` for the next page; ``None`` once done.
    continue_cursor: str | None = None


class SystemTable:
    """Reads jobs: ``await ctx.system.get(job_id)``, ``await ctx.system.list(state="pending")``;
    acts on them: ``cancel_all(...)``, ``retry(job_id)``.

    A client of a namespace that does not exist gets Temporal's ``RPCError`` (``NOT_FOUND``,
    "Namespace ... is not found") from every read, never an empty table.

    :param scheduler: schedules the jobs :meth:`retry` makes (atomic in a mutation, like any
        schedule); without one, :meth:`retry` is refused.
    """

    def __init__(self, client: Client, scheduler: Scheduler | None = None) -> None:
        self._client = client
        self._scheduler = scheduler

    async def cancel_all(self, *, name: str | None = None, state: str | None = "pending") -> int:
        """Cancel every job of procedure ``name`` (``None``: any) in ``state`` (``pending``,
        ``inProgress``, or ``None`` for both) and return how many Temporal canceled.

        One Temporal batch operation over the matching jobs, as the visibility store lists them
        (it lags writes by about a second); the count is the batch's completed operations.
        Each job then ends as :meth:`~kitcn_temporal.Scheduler.cancel` would end it: a pending
        one ``canceled``, a running action runs to its end. It takes effect at once, so a query
        or mutation may not call it (``BAD_REQUEST``).
        """
        if self._scheduler is not None and not self._scheduler.immediate:
            raise CRPCError("BAD_REQUEST", "cancel_all takes effect at once: call it from an action or a client")
        if state not in (None, "pending", "inProgress"):
            raise CRPCError(
                "BAD_REQUEST",
                f"cancel_all cancels pending or inProgress jobs (state=None: both), not {state!r} ones",
            )
        query = jobs_query(state, name)
        if state is None:
            query += " AND ExecutionStatus = 'Running'"
        reason = f"kitcn cancel_all(name={name!r}, state={state!r})"
        return await Jobs(self._client).cancel_matching(query, reason)

    async def retry(self, job_id: str) -> str:
        """Schedule a new job, due now, with a failed job's function, arguments and priority;
        returns its id. Any other state, or an unknown id, is a ``CRPCError``.

        The new job has no idempotency key (the key would name the failed job) and no
        completion callback.
        """
        if self._scheduler is None:
            raise CRPCError("BAD_REQUEST", "retry needs the app to schedule with: use KitcnClient.system or ctx.system")
        job = await self.get(job_id)
        if job is None:
            raise CRPCError("NOT_FOUND", f"no scheduled function has id {job_id!r}")
        if job.state.kind != "failed":
            raise CRPCError("BAD_REQUEST", f"job {job_id} is {job.state.kind}: only a failed job can be retried")
        return await self._scheduler.run_after(0, job.name, job.args, priority=job.priority)

    async def pause(self, name: str) -> None:
        """Pause procedure ``name`` in the namespace: its due jobs and cron runs wait (``pending``,
        ``waiting`` says so); running ones finish. Survives worker restarts; ``NOT_FOUND`` for a
        procedure the app does not have."""
        await slots.pause(self._client, *self._gate_of(name, "pause"))

    async def resume(self, name: str) -> None:
        """Resume procedure ``name``: its waiting jobs start, by priority, fairness, then due time."""
        await slots.resume(self._client, *self._gate_of(name, "resume"))

    async def paused(self) -> list[str]:
        """The paused procedures of the namespace, sorted (the app's own read at once)."""
        if self._scheduler is None:
            return await slots.paused_names(self._client, "")
        app = self._scheduler.app
        return await slots.paused_names(self._client, self._scheduler.task_queue, app.procedures)

    def _gate_of(self, name: str, verb: str) -> tuple[str, str]:
        """The task queue and name of a procedure's gate, checked."""
        if self._scheduler is None:
            raise CRPCError("BAD_REQUEST", f"{verb} needs the app: use KitcnClient.system or ctx.system")
        if not self._scheduler.immediate:
            raise CRPCError("BAD_REQUEST", f"{verb} takes effect at once: call it from an action or a client")
        if not isinstance(name, str) or name not in self._scheduler.app.procedures:
            raise CRPCError("NOT_FOUND", f"cannot {verb} {name!r}: the app has no such procedure")
        return self._scheduler.task_queue, name

    async def get(self, job_id: str) -> ScheduledFunction | None:
        """The job with this id, or ``None`` if there is none (a malformed id raises BAD_REQUEST).

        A job whose cancel request came before it started is ``canceled`` from the moment
        the request returned (its workflow records it a moment later; ``list`` follows).
        """
        found = await self.get_on_queue(job_id)
        return None if found is None else found[0]

    async def get_on_queue(self, job_id: str) -> tuple[ScheduledFunction, str] | None:
        """:meth:`get`, with the task queue the job runs on (from the same describe)."""
        jobs = Jobs(self._client)
        desc = await jobs.describe(job_id)
        if desc is None:
            return None
        row = await to_scheduled_function(desc, jobs)
        if row.state.kind == "pending" and (canceled := await jobs.canceled_before_it_ran(desc)) is not None:
            update = {"state": JobState(kind="canceled"), "completed_time": canceled, "waiting": None}
            row = row.model_copy(update=update)
        return row, desc.task_queue

    async def list(
        self, *, state: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[ScheduledFunction]:
        """At most ``limit`` jobs, most recently created first, optionally by state and procedure name.

        The rows are the first ``limit`` that Temporal's visibility store gives (it has no
        ``ORDER BY``: running jobs come first, then finished ones, most recently finished
        first), sorted by creation time; below ``limit`` matching jobs that is exactly the
        newest first. The store lags writes by about a second; :meth:`paginate` walks every row.
        """
        query = jobs_query(state, name)
        _check_count("limit", limit, MAX_LIST_LIMIT)
        jobs = Jobs(self._client)
        rows = [await to_scheduled_function(e, jobs) async for e in self._client.list_workflows(query, limit=limit)]
        return _newest_first(rows)

    async def paginate(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> PaginationResult:
        """One page of jobs, most recently created first, and the cursor of the next one.

        Pages follow the visibility store's order (running jobs first, then finished ones, most
        recently finished first); each page is sorted by creation time, as :meth:`list` is.

        :param page_size: at most this many rows (1 to 1000).
        :param cursor: ``continue_cursor`` of the previous page, with the same ``state`` and
            ``name``; ``None`` for the first page. Anything else is ``BAD_REQUEST``.
        """
        query = jobs_query(state, name)
        _check_count("page_size", page_size, MAX_PAGE_SIZE)
        token = None if cursor is None else _decode_cursor(query, cursor)
        pages = self._client.list_workflows(query, page_size=page_size, next_page_token=token)
        await pages.fetch_next_page()
        jobs = Jobs(self._client)
        rows = [await to_scheduled_function(e, jobs) for e in pages.current_page or ()]
        following = pages.next_page_token
        return PaginationResult(
            page=_newest_first(rows),
            is_done=not following,
            continue_cursor=_encode_cursor(query, following) if following else None,
        )


def _newest_first(rows: list[ScheduledFunction]) -> list[ScheduledFunction]:
    """``rows`` by creation time, most recent first (visibility takes no ``ORDER BY``)."""
    return sorted(rows, key=lambda row: row.creation_time or 0, reverse=True)


def jobs_query(state: str | None, name: str | None) -> str:
    """The visibility query of the jobs with ``state`` and procedure ``name`` (``None``: any)."""
    query = f"WorkflowType = '{JOB_WORKFLOW}'"
    if name is not None:
        try:
            check_procedure_name(name)
        except ValueError as err:
            raise CRPCError("BAD_REQUEST", str(err)) from None
        query += f" AND {SA_FUNCTION.name} = '{name}'"
    if state is not None:
        if state not in STATE_KINDS:
            raise CRPCError("BAD_REQUEST", f"unknown state {state!r}: expected one of {', '.join(STATE_KINDS)}")
        query += f" AND {state_query(state)}"
    return query


def state_of(status: WorkflowExecutionStatus | None, recorded: str | None) -> StateKind:
    """A job's state from its execution status and its ``KitcnState`` (the module's rule)."""
    for final in FINAL_STATES:
        if recorded == final:
            return final
    if status is not None and status != WorkflowExecutionStatus.RUNNING:
        return _CLOSED_STATES.get(status, "failed")
    return "inProgress" if recorded == "inProgress" else "pending"


def state_query(kind: StateKind) -> str:
    """The visibility filter matching exactly the jobs :func:`state_of` gives ``kind``."""
    attr = SA_STATE.name
    running = f"ExecutionStatus = '{_STATUS_NAMES[WorkflowExecutionStatus.RUNNING]}'"
    if kind == "inProgress":
        return f"({running} AND {attr} = 'inProgress')"
    if kind == "pending":
        return f"({running} AND {_recorded_none_of((*FINAL_STATES, 'inProgress'))})"
    closed = tuple(_STATUS_NAMES[s] for s, state in _CLOSED_STATES.items() if state == kind)
    return f"({attr} = '{kind}' OR ({_recorded_none_of(FINAL_STATES)} AND ExecutionStatus IN ({_quoted(closed)})))"


def _recorded_none_of(kinds: tuple[str, ...]) -> str:
    """``KitcnState`` is none of ``kinds``, or unset (NULL matches no ``NOT IN`` in the filter)."""
    attr = SA_STATE.name
    return f"({attr} IS NULL OR {attr} NOT IN ({_quoted(kinds)}))"


async def to_scheduled_function(execution: WorkflowExecution, jobs: Jobs) -> ScheduledFunction:
    """A job workflow's row (its state by :func:`state_of`)."""
    with decrypting(f"job {execution.id}"):
        memo = await execution.memo()
    spec = memo.get(MEMO_SPEC)
    priority = spec.get("priority") if isinstance(spec, dict) else None
    fairness = spec.get("fairness_key") if isinstance(spec, dict) else None
    attrs = execution.typed_search_attributes
    kind = state_of(execution.status, attrs.get(SA_STATE))
    error = None
    if kind == "failed":
        error = memo.get(MEMO_ERROR) or _closed_reason(execution.status)
    due = attrs.get(SA_SCHEDULED_TIME)  # a cron run sets it when it starts
    scheduled = datetime_to_ms(due or execution.start_time)
    return ScheduledFunction(
        id=execution.id,
        name=attrs.get(SA_FUNCTION) or "",
        args=await jobs.args_of(execution),
        scheduled_time=scheduled,
        completed_time=datetime_to_ms(execution.close_time) if execution.close_time else None,
        creation_time=datetime_to_ms(execution.start_time),
        state=JobState(kind=kind, error=error),
        waiting=memo.get(MEMO_WAITING) if kind == "pending" else None,
        key=key_of(execution.id),
        priority=priority if isinstance(priority, int) else None,
        fairness_key=fairness if isinstance(fairness, str) else None,
    )


def _closed_reason(status: WorkflowExecutionStatus | None) -> str:
    reason = {WorkflowExecutionStatus.TIMED_OUT: "timed out", WorkflowExecutionStatus.TERMINATED: "terminated"}
    return reason.get(status, "failed") if status is not None else "failed"


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _check_count(label: str, value: Any, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise CRPCError("BAD_REQUEST", f"{label} must be an integer from 1 to {most}, not {value!r}")


def _encode_cursor(query: str, token: bytes) -> str:
    """Temporal's page token, bound to its query by a digest: opaque, URL-safe base64."""
    raw = _CURSOR_VERSION + _cursor_digest(query, token) + token
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(query: str, cursor: Any) -> bytes:
    problem = (
        f"invalid cursor {str(cursor)[:80]!r}: pass the continue_cursor of a page listed with the same state and name"
    )
    if not isinstance(cursor, str) or not cursor.isascii():
        raise CRPCError("BAD_REQUEST", problem)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise CRPCError("BAD_REQUEST", problem) from None
    digest, token = raw[1 : 1 + _CURSOR_DIGEST_SIZE], raw[1 + _CURSOR_DIGEST_SIZE :]
    if raw[:1] != _CURSOR_VERSION or not token or digest != _cursor_digest(query, token):
        raise CRPCError("BAD_REQUEST", problem)
    return token


def _cursor_digest(query: str, token: bytes) -> bytes:
    return hashlib.blake2b(query.encode() + b"\0" + token, digest_size=_CURSOR_DIGEST_SIZE).digest()
