"""The ``_scheduled_functions`` table, read from Temporal's job workflows.

Layer: scheduler and status table.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from ._errors import CRPCError
from ._jobs import Jobs
from ._names import check_procedure_name
from ._wire import (
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

#: What a running job's ``KitcnState`` may say (anything else reads as pending).
_RUNNING_STATES: dict[str, StateKind] = {"inProgress": "inProgress", "canceled": "canceled"}
#: The most rows one ``list`` call returns.
MAX_LIST_LIMIT = 10_000


class JobState(BaseModel):
    """A job's state: ``{kind}``, plus ``error`` when failed."""

    #: ``pending`` | ``inProgress`` | ``success`` | ``failed`` | ``canceled``.
    kind: StateKind
    #: Why the job failed (``failed`` only).
    error: str | None = None


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


class SystemTable:
    """Reads jobs: ``await ctx.system.get(job_id)``, ``await ctx.system.list(state="pending")``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def get(self, job_id: str) -> ScheduledFunction | None:
        """The job with this id, or ``None`` if there is none (a malformed id raises BAD_REQUEST)."""
        desc = await Jobs(self._client).describe(job_id)
        return None if desc is None else await to_scheduled_function(desc, Jobs(self._client))

    async def list(
        self, *, state: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[ScheduledFunction]:
        """Jobs, most recent first, optionally by state and procedure name.

        Backed by Temporal's visibility store, which lags writes by about a second.
        """
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
            query += f" AND {SA_STATE.name} = '{state}'"
            if state in ("pending", "inProgress"):
                query += " AND ExecutionStatus = 'Running'"
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise CRPCError("BAD_REQUEST", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
        rows, jobs = [], Jobs(self._client)
        async for execution in self._client.list_workflows(query, limit=limit):
            row = await to_scheduled_function(execution, jobs)
            if state is None or row.state.kind == state:
                rows.append(row)
        return rows


async def to_scheduled_function(execution: WorkflowExecution, jobs: Jobs) -> ScheduledFunction:
    """A job workflow's row: state from its execution status and ``KitcnState``."""
    memo = await execution.memo()
    spec = memo.get(MEMO_SPEC)
    priority = spec.get("priority") if isinstance(spec, dict) else None
    attrs = execution.typed_search_attributes
    status = execution.status
    error = None
    if status == WorkflowExecutionStatus.RUNNING:
        kind = _RUNNING_STATES.get(attrs.get(SA_STATE) or "", "pending")
    elif status == WorkflowExecutionStatus.COMPLETED:
        kind = "success"
    elif status == WorkflowExecutionStatus.CANCELED:
        kind = "canceled"
    else:  # failed, timed out or terminated by an operator
        kind = "failed"
        error = memo.get(MEMO_ERROR) or _closed_reason(status)
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
    )


def _closed_reason(status: WorkflowExecutionStatus | None) -> str:
    reason: dict[Any, Literal["timed out", "terminated", "failed"]] = {
        WorkflowExecutionStatus.TIMED_OUT: "timed out",
        WorkflowExecutionStatus.TERMINATED: "terminated",
    }
    return reason.get(status, "failed")
