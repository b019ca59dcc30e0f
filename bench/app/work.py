"""Trivial procedures for the benchmarks."""

from __future__ import annotations

import time

from pydantic import BaseModel
from sqlalchemy import text

from kitcn_temporal import ActionCtx, MutationCtx, QueryCtx, private_action, private_mutation, private_query

#: Start times of ``stamp`` runs by batch, for lateness (the worker runs in the bench process).
STARTED: dict[str, list[float]] = {}


class NoopIn(BaseModel):
    n: int


class StampIn(BaseModel):
    batch: str


@private_mutation.input(NoopIn).mutation
async def noop(ctx: MutationCtx, input: NoopIn) -> int:
    return input.n


@private_mutation.input(StampIn).mutation
async def stamp(ctx: MutationCtx, input: StampIn) -> None:
    STARTED.setdefault(input.batch, []).append(time.time())


@private_query.input(NoopIn).query
async def read(ctx: QueryCtx, input: NoopIn) -> int:
    """A query that reads the app's database once (the direct-call benchmarks give it one)."""
    return int(await ctx.db.scalar(text("SELECT :n"), {"n": input.n}))


@private_mutation.input(NoopIn).mutation
async def schedule_later(ctx: MutationCtx, input: NoopIn) -> str:
    """A mutation that schedules one ``noop`` an hour out (its job only waits)."""
    return await ctx.scheduler.run_after(3_600_000, "work.noop", {"n": input.n})


@private_action.input(NoopIn).action
async def noop_action(ctx: ActionCtx, input: NoopIn) -> int:
    """A zero-work action, uncapped."""
    return input.n


@private_action.input(NoopIn).concurrency(8).action
async def capped_action(ctx: ActionCtx, input: NoopIn) -> int:
    """The same action, at most 8 at once across the fleet."""
    return input.n


@private_mutation.input(NoopIn).mutation
async def schedule_now(ctx: MutationCtx, input: NoopIn) -> str:
    """A mutation that schedules one ``noop`` due now (the cost bench calls it directly)."""
    return await ctx.scheduler.run_after(0, "work.noop", {"n": input.n})


@private_mutation.input(NoopIn).concurrency(8).mutation
async def capped_noop(ctx: MutationCtx, input: NoopIn) -> int:
    """``noop``, at most 8 at once across the fleet (the cost bench's capped shape)."""
    return input.n
