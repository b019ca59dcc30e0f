"""Procedures that register and unregister runtime crons (``ctx.crons``); their runs are
``cronjobs.tick`` jobs that record themselves under the cron's token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from kitcn_temporal import CRPCError, private_action, private_mutation, private_query

from . import cronjobs


class RegisterIn(BaseModel):
    name: str
    spec: dict[str, Any]
    token: str


class NameIn(BaseModel):
    name: str


@private_mutation.input(RegisterIn).mutation
async def register(ctx, input: RegisterIn) -> None:
    await ctx.crons.register(input.name, input.spec, cronjobs.tick, {"token": input.token})


@private_mutation.input(RegisterIn).mutation
async def register_then_fail(ctx, input: RegisterIn) -> None:
    await ctx.crons.register(input.name, input.spec, "cronjobs.tick", {"token": input.token})
    raise CRPCError("CONFLICT", "refused after registering")


@private_mutation.input(NameIn).mutation
async def unregister(ctx, input: NameIn) -> bool:
    existed: bool = await ctx.crons.unregister(input.name)
    return existed


@private_mutation.input(RegisterIn).mutation
async def register_badly_then_commit(ctx, input: RegisterIn) -> str:
    """A bad registration raises at the call; the mutation catches it and commits."""
    try:
        await ctx.crons.register(input.name, input.spec, cronjobs.tick, {"token": input.token})
    except CRPCError as err:
        return err.code
    return "registered"


@private_mutation.input(RegisterIn).mutation
async def register_and_read(ctx, input: RegisterIn) -> dict[str, Any]:
    """What this mutation sees of its own uncommitted change, then of its undoing."""
    await ctx.crons.register(input.name, input.spec, cronjobs.tick, {"token": input.token})
    registered = await ctx.crons.get(input.name)
    listed = [row.name for row in await ctx.crons.list()]
    await ctx.crons.unregister(input.name)
    return {
        "registered": registered.model_dump(mode="json") if registered else None,
        "listed": input.name in listed,
        "after_unregister": await ctx.crons.get(input.name),
    }


@private_action.input(RegisterIn).action
async def register_then_fail_action(ctx, input: RegisterIn) -> None:
    """From an action, a registration is immediate: it stands though the action fails."""
    await ctx.crons.register(input.name, input.spec, cronjobs.tick, {"token": input.token})
    raise CRPCError("CONFLICT", "refused after registering")


@private_query.input(RegisterIn).query
async def register_from_query(ctx, input: RegisterIn) -> None:
    await ctx.crons.register(input.name, input.spec, cronjobs.tick, {"token": input.token})


@private_query.input(NameIn).query
async def read(ctx, input: NameIn) -> dict[str, Any]:
    """A query reads runtime crons."""
    row = await ctx.crons.get(input.name)
    return {"get": row.model_dump(mode="json") if row else None, "listed": [r.name for r in await ctx.crons.list()]}


class BackfillIn(BaseModel):
    name: str
    start: datetime
    end: datetime


@private_action.input(BackfillIn).action
async def backfill(ctx, input: BackfillIn) -> int:
    runs: int = await ctx.crons.backfill(input.name, input.start, input.end)
    return runs


@private_mutation.input(BackfillIn).mutation
async def backfill_from_mutation(ctx, input: BackfillIn) -> int:
    runs: int = await ctx.crons.backfill(input.name, input.start, input.end)
    return runs
