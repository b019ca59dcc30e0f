"""The chaos load's procedures: a mutation that writes a ledger row, an action that appends to a file."""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel

from kitcn_temporal import ActionCtx, MutationCtx, private_action, private_mutation

from .models import LedgerRow


class WriteIn(BaseModel):
    kind: str = "now"
    #: Keep the transaction open this long after the write (room for a database kill to land).
    hold_ms: int = 0


class ActIn(BaseModel):
    #: The ledger file each run appends its lines to.
    ledger: str
    duration_ms: int = 0


class CronIn(BaseModel):
    name: str
    interval_ms: int


def job_id(ctx: MutationCtx | ActionCtx) -> str:
    return ctx.job.id if ctx.job is not None else "call"


@private_mutation.input(WriteIn).mutation
async def write(ctx: MutationCtx, input: WriteIn) -> str:
    """One ledger row for this job, in the mutation's transaction."""
    ctx.db.add(LedgerRow(job_id=job_id(ctx), kind=input.kind, at=time.time()))
    if input.hold_ms:
        await ctx.db.flush()
        await asyncio.sleep(input.hold_ms / 1000)
    return job_id(ctx)


def append(ledger: str, line: str) -> None:
    """One line per write, appended atomically (O_APPEND): concurrent runs never interleave."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def run_and_record(ctx: ActionCtx, input: ActIn) -> str:
    """``start <job> <pid> <time>``, ``duration_ms`` of work, ``done <job> <pid> <time>``.

    A run interrupted in its process (the worker cancels it: its activity timed out while the
    worker was cut off) ends with ``cut`` instead of ``done``; a killed one leaves only its start."""
    job, pid = job_id(ctx), os.getpid()
    append(input.ledger, f"start {job} {pid} {time.time():.6f}")
    try:
        await asyncio.sleep(input.duration_ms / 1000)
    except BaseException:
        append(input.ledger, f"cut {job} {pid} {time.time():.6f}")
        raise
    append(input.ledger, f"done {job} {pid} {time.time():.6f}")
    return job


@private_action.input(ActIn).action
async def act(ctx: ActionCtx, input: ActIn) -> str:
    return await run_and_record(ctx, input)


@private_mutation.input(CronIn).mutation
async def register_cron(ctx: MutationCtx, input: CronIn) -> None:
    """Registers a runtime cron writing a ledger row every ``interval_ms`` (atomic with this mutation)."""
    await ctx.crons.register(input.name, {"interval_ms": input.interval_ms}, write, {"kind": "cron"})
