"""Procedures that misuse the runtime, for the bad-input matrix: each must fail with one clear error.

The ones that schedule before failing write the job ids they were given to ``ids_file`` (a
mutation's database writes roll back with it), so the test can check none of them exists.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from kitcn_temporal import CRPCError, create_caller, private_mutation, private_query

from . import work
from .models import Effect

_self = sys.modules[__name__]


class OrderIn(BaseModel):
    order_id: str
    qty: int


class SinkIn(BaseModel):
    token: str
    blob: str = ""
    extra: Any = None


class ManyIn(BaseModel):
    token: str
    ids_file: str
    count: int
    size: int = 0


class IdsIn(BaseModel):
    token: str
    ids_file: str


@private_mutation.input(OrderIn).mutation
async def typed(ctx, input: OrderIn) -> None:
    """A target with typed arguments."""


@private_mutation.input(SinkIn).mutation
async def sink(ctx, input: SinkIn) -> None:
    """A target that leaves an effect if it ever runs."""
    ctx.db.add(Effect(job_id=work.run_id(ctx), token=input.token, kind="sink"))


@private_query.input(SinkIn).query
async def peek(ctx, input: SinkIn) -> int:
    return 0


@private_mutation.input(SinkIn).output(int).mutation
async def wrong_output(ctx, input: SinkIn) -> Any:
    ctx.db.add(Effect(job_id=work.run_id(ctx), token=input.token, kind="wrong_output"))
    return "not a number"


@private_mutation.input(SinkIn).mutation
async def unserialisable_output(ctx, input: SinkIn):  # no annotation: the output is not validated
    ctx.db.add(Effect(job_id=work.run_id(ctx), token=input.token, kind="unserialisable_output"))
    return object()


async def refuse_everyone(ctx: Any, next: Any) -> Any:
    raise CRPCError("FORBIDDEN", "misuse.guarded: its middleware refuses every caller")


@private_mutation.use(refuse_everyone).input(SinkIn).mutation
async def guarded(ctx, input: SinkIn) -> None:
    ctx.db.add(Effect(job_id=work.run_id(ctx), token=input.token, kind="guarded"))


def remember(ids_file: str, job_id: str) -> None:
    work.append(ids_file, job_id)


async def schedule_a_sink(ctx, input: IdsIn | ManyIn, size: int = 0) -> None:
    job_id = await ctx.scheduler.run_after(60_000, "misuse.sink", {"token": input.token, "blob": "x" * size})
    remember(input.ids_file, job_id)


@private_mutation.input(ManyIn).mutation
async def schedule_many(ctx, input: ManyIn) -> int:
    for _ in range(input.count):
        await schedule_a_sink(ctx, input, input.size)
    return input.count


@private_mutation.input(IdsIn).mutation
async def schedule_then_bad_args(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)
    await create_caller(ctx, _self).schedule.now.typed(order_id=input.token, qty="many")


@private_mutation.input(IdsIn).mutation
async def schedule_then_unknown(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)
    await ctx.scheduler.run_after(0, "misuse.nowhere", {})


@private_mutation.input(IdsIn).mutation
async def schedule_then_cancel_unknown(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)
    await ctx.scheduler.cancel(f"no-such-job-{input.token}")


@private_mutation.input(IdsIn).mutation
async def schedule_then_naive(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)
    await create_caller(ctx, _self).schedule.at(datetime(2030, 1, 1)).sink(token=input.token)


@private_mutation.input(IdsIn).mutation
async def schedule_then_raise(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)
    raise ValueError("misuse.schedule_then_raise changed its mind")


@private_query.input(IdsIn).query
async def query_schedules(ctx, input: IdsIn) -> None:
    await schedule_a_sink(ctx, input)


@private_query.input(SinkIn).query
async def query_calls_mutation(ctx, input: SinkIn) -> None:
    await create_caller(ctx, _self).sink(token=input.token)


@private_mutation.input(SinkIn).mutation
async def mutation_calls_action(ctx, input: SinkIn) -> None:
    await create_caller(ctx, work).actions.record(ledger="/dev/null")
