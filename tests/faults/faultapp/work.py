"""The jobs the fault tests run: mutations with an effect row per job, actions with a ledger."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from kitcn_temporal import Completion, CRPCError, create_caller, private_action, private_mutation

from .models import Effect


class BumpIn(BaseModel):
    token: str
    #: Also schedule ``followup`` from inside the mutation (atomic with its effect).
    follow: bool = False


class LedgerIn(BaseModel):
    #: The file each run appends its lines to.
    ledger: str
    duration_ms: int = 0
    #: When given, the action also waits until this file exists.
    release: str | None = None


def run_id(ctx) -> str:
    return ctx.job.id if ctx.job is not None else "call"


@private_mutation.input(BumpIn).mutation
async def bump(ctx, input: BumpIn) -> str | None:
    """Writes one effect row for this job; with ``follow``, schedules ``followup`` too."""
    ctx.db.add(Effect(job_id=run_id(ctx), token=input.token, kind="bump"))
    if input.follow:
        return await create_caller(ctx, sys.modules[__name__]).schedule.now.followup(token=input.token)
    return None


@private_mutation.input(BumpIn).mutation
async def followup(ctx, input: BumpIn) -> None:
    ctx.db.add(Effect(job_id=run_id(ctx), token=input.token, kind="followup"))


def append(ledger: str, line: str) -> None:
    """One line per write, appended atomically (O_APPEND): concurrent runs never interleave."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@private_action.input(LedgerIn).action
async def record(ctx, input: LedgerIn) -> str:
    """Appends ``start <job> <pid>``, runs ``duration_ms`` (and until ``release`` exists),
    then appends ``done <job> <pid>``: a run cut short leaves a start without a done."""
    job, pid = run_id(ctx), os.getpid()
    append(input.ledger, f"start {job} {pid}")
    await asyncio.sleep(input.duration_ms / 1000)
    while input.release is not None and not Path(input.release).exists():
        await asyncio.sleep(0.05)
    append(input.ledger, f"done {job} {pid}")
    return job


@private_action.input(LedgerIn).timeout(timedelta(seconds=1)).action
async def overrun(ctx, input: LedgerIn) -> None:
    """Runs past its 1 s time limit."""
    await asyncio.sleep(input.duration_ms / 1000)


@private_action.input(BumpIn).action
async def refuse(ctx, input: BumpIn) -> None:
    raise CRPCError("CONFLICT", f"refused {input.token}")


@private_mutation.input(BumpIn).mutation
async def developer_error(ctx, input: BumpIn) -> None:
    raise ValueError(f"bad things happened to {input.token}")


@private_mutation.input(BumpIn).mutation
async def flaky(ctx, input: BumpIn) -> int:
    """Fails transiently on its first attempt, then writes its effect."""
    if ctx.job is not None and ctx.job.attempt < 2:
        raise ConnectionError("database unreachable")
    ctx.db.add(Effect(job_id=run_id(ctx), token=input.token, kind="flaky"))
    return ctx.job.attempt if ctx.job is not None else 0


@private_mutation.input(BumpIn).mutation
async def schedule_and_cancel(ctx, input: BumpIn) -> str:
    """Schedules ``followup`` and cancels it in the same mutation: the job is created canceled."""
    job_id = await ctx.scheduler.run_after(0, "work.followup", {"token": input.token})
    await ctx.scheduler.cancel(job_id)
    return job_id


@private_mutation.input(BumpIn).mutation
async def always_transient(ctx, input: BumpIn) -> None:
    """Fails transiently on every attempt: it retries until canceled."""
    raise ConnectionError("database unreachable, again")


@private_mutation.input(Completion).mutation
async def completed(ctx, input: Completion) -> None:
    """A completion callback: one effect row per job that ended."""
    ctx.db.add(Effect(job_id=input.job_id, token=input.state.kind, kind="completed"))


@private_mutation.input(BumpIn).worker_concurrency(1).mutation
async def serial_bump(ctx, input: BumpIn) -> None:
    """Concurrency-limited: a regular activity on a task queue of its own."""
    ctx.db.add(Effect(job_id=run_id(ctx), token=input.token, kind="serial"))
