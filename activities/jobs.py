"""Jobs: the ``_scheduled_functions`` status table, read from procedures (``ctx.system``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kitcn_temporal import QueryCtx, ScheduledFunction

from ._crpc import public_query


class JobIn(BaseModel):
    job_id: str


class PendingJobsIn(BaseModel):
    #: Only jobs of this procedure, e.g. ``"orders.charge"``.
    name: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


@public_query.input(JobIn).query
async def get_job_status(ctx: QueryCtx, input: JobIn) -> ScheduledFunction | None:
    """The job's row: name, scheduled and completed times, and ``state.kind``; ``None`` if unknown."""
    return await ctx.system.get(input.job_id)


@public_query.input(PendingJobsIn).query
async def list_pending_jobs(ctx: QueryCtx, input: PendingJobsIn) -> list[ScheduledFunction]:
    """The jobs still waiting to run, most recent first (Temporal's list lags by about a second)."""
    return await ctx.system.list(state="pending", name=input.name, limit=input.limit)
