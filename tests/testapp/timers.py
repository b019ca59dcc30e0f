"""Procedures that take (virtual) time: chains of delayed jobs, retries an hour apart."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio.common import RetryPolicy

from kitcn_temporal import private_action, private_mutation

from .probe import RUNS, gate


class ChainIn(BaseModel):
    token: str
    every_ms: int
    remaining: int


class TokenIn(BaseModel):
    token: str


@private_mutation.input(ChainIn).mutation
async def chain(ctx, input: ChainIn) -> int:
    """Records its run, then schedules the next link ``every_ms`` later while links remain."""
    RUNS[input.token].append(input.remaining)
    if input.remaining > 0:
        args = {"token": input.token, "every_ms": input.every_ms, "remaining": input.remaining - 1}
        await ctx.scheduler.run_after(input.every_ms, "timers.chain", args)
    return len(RUNS[input.token])


class LoopIn(BaseModel):
    token: str
    every_ms: int = 0


@private_mutation.input(LoopIn).mutation
async def forever(ctx, input: LoopIn) -> None:
    """Schedules itself again ``every_ms`` later, until the token's gate opens."""
    RUNS[input.token].append("forever")
    if not gate(input.token).is_set():
        await ctx.scheduler.run_after(input.every_ms, "timers.forever", input.model_dump())


@private_mutation.input(LoopIn).mutation
async def ping(ctx, input: LoopIn) -> None:
    """Schedules ``pong``, which schedules ``ping`` again, until the token's gate opens."""
    if not gate(input.token).is_set():
        await ctx.scheduler.run_after(input.every_ms, "timers.pong", input.model_dump())


@private_mutation.input(LoopIn).mutation
async def pong(ctx, input: LoopIn) -> None:
    if not gate(input.token).is_set():
        await ctx.scheduler.run_after(input.every_ms, "timers.ping", input.model_dump())


_HOURLY = RetryPolicy(initial_interval=timedelta(hours=1), backoff_coefficient=1.0, maximum_attempts=3)


@private_action.input(TokenIn).retry(_HOURLY).action
async def hourly_retried(ctx, input: TokenIn) -> int:
    """Fails twice; Temporal retries it an hour apart."""
    RUNS[input.token].append(ctx.job.attempt)
    if ctx.job.attempt < 3:
        raise RuntimeError(f"not yet (attempt {ctx.job.attempt})")
    return ctx.job.attempt
