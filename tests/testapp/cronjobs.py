"""Cron targets: each run records itself under the cron's token."""

from __future__ import annotations

from pydantic import BaseModel

from kitcn_temporal import private_action, private_mutation, public_query

from .probe import RUNS


class TickIn(BaseModel):
    token: str
    note: str = ""


@private_mutation.input(TickIn).mutation
async def tick(ctx, input: TickIn) -> int:
    RUNS[input.token].append(("tick", ctx.job, input.note))
    return len(RUNS[input.token])


@private_action.action
async def beat(ctx) -> None:
    """An action without arguments."""
    RUNS["cronjobs.beat"].append(ctx.job)


@public_query.query
async def peek(ctx) -> int:
    """A query: never a cron target."""
    return len(RUNS)
