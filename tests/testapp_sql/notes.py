"""Procedures that write through ``ctx.db`` and schedule from inside their transaction."""

from __future__ import annotations

import sys

from pydantic import BaseModel
from sqlalchemy import func, select

from kitcn_temporal import Completion, CRPCError, create_caller, private_action, private_mutation, private_query
from testapp.probe import RUNS, wait_for

from .models import Counter, Mark, Note


class TokenIn(BaseModel):
    token: str


class CounterIn(BaseModel):
    counter_id: str
    token: str


class NoteOut(BaseModel):
    token: str
    note_id: int
    mark_job: str


@private_mutation.input(TokenIn).mutation
async def add_note(ctx, input: TokenIn) -> NoteOut:
    """Writes a note and schedules ``mark`` in the same transaction."""
    note = Note(token=input.token)
    ctx.db.add(note)
    await ctx.db.flush()
    mark_job = await create_caller(ctx, sys.modules[__name__]).schedule.now.mark(token=input.token)
    return NoteOut(token=input.token, note_id=note.id, mark_job=mark_job)


@private_mutation.input(Completion).mutation
async def note_completed(ctx, input: Completion) -> dict[str, str]:
    """A completion callback that writes a mark ``done:<token>`` (the token from the job's result)."""
    token = f"done:{(input.result or {}).get('token', input.job_id)}"
    ctx.db.add(Mark(token=token, job_id=input.job_id))
    return {"token": token}


class CronNoteIn(BaseModel):
    token: str
    cron: str


@private_mutation.input(CronNoteIn).mutation
async def add_note_with_cron(ctx, input: CronNoteIn) -> dict[str, str]:
    """Writes a note and registers an hourly runtime cron in the same transaction."""
    ctx.db.add(Note(token=input.token))
    await ctx.crons.register(input.cron, {"interval_ms": 3_600_000}, mark, {"token": input.token})
    return {"token": input.token}


class CancelIn(BaseModel):
    token: str
    job_id: str


@private_mutation.input(CancelIn).mutation
async def add_note_and_cancel(ctx, input: CancelIn) -> None:
    """Writes a note and cancels a job in the same transaction."""
    ctx.db.add(Note(token=input.token))
    await ctx.scheduler.cancel(input.job_id)


@private_mutation.input(TokenIn).mutation
async def mark(ctx, input: TokenIn) -> None:
    ctx.db.add(Mark(token=input.token, job_id=ctx.job.id))


@private_mutation.input(TokenIn).mutation
async def add_note_then_fail(ctx, input: TokenIn) -> None:
    """Runs ``add_note`` in-process (same transaction), then fails: nothing may stand."""
    out = await create_caller(ctx, sys.modules[__name__]).add_note(token=input.token)
    raise CRPCError("CONFLICT", "refused after writing", {"mark_job": out.mark_job})


@private_action.input(TokenIn).action
async def add_note_then_fail_action(ctx, input: TokenIn) -> None:
    """An action's mutation is a unit of its own: it commits even though the action fails."""
    out = await create_caller(ctx, sys.modules[__name__]).add_note(token=input.token)
    raise CRPCError("CONFLICT", "refused after the mutation", {"mark_job": out.mark_job})


@private_action.input(TokenIn).action
async def touch_db_in_action(ctx, input: TokenIn) -> None:
    ctx.db  # noqa: B018 - the access itself is what is refused


@private_query.input(TokenIn).query
async def count_notes(ctx, input: TokenIn) -> int:
    return int(await ctx.db.scalar(select(func.count()).select_from(Note).where(Note.token == input.token)) or 0)


@private_query.input(TokenIn).query
async def write_in_query(ctx, input: TokenIn) -> None:
    ctx.db.add(Note(token=input.token))
    await ctx.db.flush()


@private_mutation.input(CounterIn).mutation
async def create_counter(ctx, input: CounterIn) -> None:
    ctx.db.add(Counter(id=input.counter_id, value=0))


@private_mutation.input(CounterIn).mutation
async def increment(ctx, input: CounterIn) -> int:
    """Read-modify-write; the first two attempts wait for each other after reading, so
    they truly overlap (under PostgreSQL SERIALIZABLE one of them must retry)."""
    counter = await ctx.db.get(Counter, input.counter_id)
    assert counter is not None
    reads = RUNS[input.token]
    reads.append(counter.value)
    if len(reads) <= 2:
        await wait_for(lambda: len(reads) >= 2, timeout=20)
    counter.value += 1
    return counter.value


@private_action.input(CounterIn).action
async def increment_from_action(ctx, input: CounterIn) -> int:
    return await create_caller(ctx, sys.modules[__name__]).increment(input)


class MarksIn(BaseModel):
    token: str
    count: int = 3


class MarksOut(BaseModel):
    token: str
    mark_jobs: list[str]


@private_mutation.input(MarksIn).mutation
async def add_note_and_marks(ctx, input: MarksIn) -> MarksOut:
    """Writes a note and schedules ``count`` marks; the ids also go to ``RUNS[token]``."""
    ctx.db.add(Note(token=input.token))
    later = create_caller(ctx, sys.modules[__name__]).schedule
    ids = [await later.now.mark(token=input.token) for _ in range(input.count)]
    RUNS[input.token].extend(ids)
    return MarksOut(token=input.token, mark_jobs=ids)


@private_mutation.input(MarksIn).mutation
async def marks_then_raise(ctx, input: MarksIn) -> None:
    """Writes a note, schedules ``count`` marks (ids to ``RUNS[token]``), then fails."""
    await create_caller(ctx, sys.modules[__name__]).add_note_and_marks(input)
    raise RuntimeError("changed my mind")


@private_mutation.input(TokenIn).mutation
async def write_note(ctx, input: TokenIn) -> int:
    """Writes a note and schedules nothing."""
    ctx.db.add(Note(token=input.token))
    return 1
