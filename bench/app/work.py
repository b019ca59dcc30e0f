"""Trivial procedures for the benchmarks."""

from __future__ import annotations

import time

from pydantic import BaseModel

from kitcn_temporal import MutationCtx, private_mutation

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
