"""Sessions: the "cleanup stale data" cron deletes those inactive for 30 days."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from sqlalchemy import delete, select

from kitcn_temporal import MutationCtx

from ._crpc import private_mutation
from .models import Session, now_ms

#: Sessions inactive for this long are deleted by ``cleanup_stale_data``.
STALE_AFTER = timedelta(days=30)
#: At most this many sessions go per run (the next run takes the rest).
CLEANUP_BATCH = 1000


class RecordActivityIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=200)
    #: When the activity happened, in ms since the epoch (default: now).
    at: int | None = None


class CleanupOut(BaseModel):
    deleted_count: int


@private_mutation.input(RecordActivityIn).mutation
async def record_activity(ctx: MutationCtx, input: RecordActivityIn) -> None:
    """Create the session or move its ``last_active_at`` forward."""
    at = now_ms() if input.at is None else input.at
    session = await ctx.db.get(Session, input.session_id)
    if session is None:
        ctx.db.add(Session(id=input.session_id, user_id=input.user_id, last_active_at=at))
    else:
        session.last_active_at = max(session.last_active_at, at)


@private_mutation.mutation
async def cleanup_stale_data(ctx: MutationCtx) -> CleanupOut:
    """Delete sessions inactive for 30 days (up to 1000 per run); returns how many went.

    Counted from when the run was due (a cron run's time; now for a direct call), so a late
    run cleans what its time made stale, and a test's virtual time reaches it.
    """
    as_of = ctx.job.scheduled_time if ctx.job is not None else now_ms()
    cutoff = as_of - int(STALE_AFTER.total_seconds() * 1000)
    stale = (await ctx.db.scalars(select(Session.id).where(Session.last_active_at < cutoff).limit(CLEANUP_BATCH))).all()
    if stale:
        await ctx.db.execute(delete(Session).where(Session.id.in_(stale)))
    return CleanupOut(deleted_count=len(stale))
