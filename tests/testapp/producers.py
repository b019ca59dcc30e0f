"""Procedures that schedule and cancel: the scheduler's rules seen from inside."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from kitcn_temporal import (
    CRPCError,
    create_caller,
    private_action,
    private_mutation,
    private_query,
)

from . import producers, targets
from .probe import RUNS, gate


class TokenIn(BaseModel):
    token: str


class ManyIn(BaseModel):
    token: str
    count: int
    size: int = 0
    delay_ms: int = 60_000


class TargetIn(BaseModel):
    token: str
    job_id: str


@private_mutation.input(TokenIn).mutation
async def schedule_three_then_raise(ctx, input: TokenIn) -> None:
    later = create_caller(ctx, targets).schedule
    for delay in (0, 10, 20):
        RUNS[input.token].append(await later.after(delay).touch(token=input.token))
    raise RuntimeError("changed my mind")


@private_mutation.input(TokenIn).mutation
async def schedule_three_flaky(ctx, input: TokenIn) -> list[str]:
    """Schedules three jobs, then fails transiently on its first two attempts."""
    later = create_caller(ctx, targets).schedule
    ids = [await later.now.touch(token=input.token) for _ in range(3)]
    RUNS[f"{input.token}:ids"].append(ids)
    if ctx.job.attempt < 3:
        raise ConnectionError("lost the connection after scheduling")
    return ids


@private_mutation.input(TargetIn).mutation
async def cancel_then_raise(ctx, input: TargetIn) -> None:
    await create_caller(ctx, targets).schedule.cancel(input.job_id)
    raise RuntimeError("changed my mind")


@private_mutation.input(TargetIn).mutation
async def cancel_it(ctx, input: TargetIn) -> None:
    await ctx.scheduler.cancel(input.job_id)


@private_action.input(TargetIn).action
async def cancel_it_action(ctx, input: TargetIn) -> None:
    await ctx.scheduler.cancel(input.job_id)


@private_mutation.input(TokenIn).mutation
async def schedule_and_cancel_own(ctx, input: TokenIn) -> str:
    """Schedules a job and cancels it in the same mutation: it is created canceled."""
    job_id = await ctx.scheduler.run_after(0, "targets.touch", {"token": input.token})
    await ctx.scheduler.cancel(job_id)
    return job_id


@private_action.input(TokenIn).action
async def schedule_then_fail(ctx, input: TokenIn) -> None:
    RUNS[f"{input.token}:ids"].append(await create_caller(ctx, targets).schedule.now.touch(token=input.token))
    raise RuntimeError("the action failed after scheduling")


@private_mutation.input(ManyIn).mutation
async def schedule_many(ctx, input: ManyIn) -> int:
    """Schedules ``count`` jobs with ``size``-character payloads; records each call that passed."""
    for i in range(input.count):
        await ctx.scheduler.run_after(
            input.delay_ms, "targets.take_payload", {"token": input.token, "blob": "x" * input.size}
        )
        RUNS[input.token].append(i)
    return input.count


@private_action.input(TokenIn).action
async def gated_scheduler(ctx, input: TokenIn) -> dict[str, str]:
    """Schedules one job, waits for its gate, then schedules another."""
    later = create_caller(ctx, targets).schedule
    before = await later.after(timedelta(minutes=1)).touch(token=input.token)
    RUNS[input.token].append("started")
    await gate(input.token).wait()
    after = await later.after(timedelta(minutes=1)).touch(token=input.token)
    return {"before": before, "after": after}


@private_mutation.input(TokenIn).mutation
async def outer_mutation(ctx, input: TokenIn) -> None:
    """Calls a mutation that schedules, then fails: the nested schedule joins this unit."""
    await create_caller(ctx, producers).inner_mutation(token=input.token)
    raise RuntimeError("outer failed")


@private_mutation.input(TokenIn).mutation
async def inner_mutation(ctx, input: TokenIn) -> str:
    job_id = await create_caller(ctx, targets).schedule.now.touch(token=input.token)
    RUNS[f"{input.token}:ids"].append(job_id)
    return job_id


@private_action.input(TokenIn).action
async def action_calls_mutation_then_fails(ctx, input: TokenIn) -> None:
    """The mutation is a unit of its own: its schedule stands when the action fails later."""
    await create_caller(ctx, producers).inner_mutation(token=input.token)
    raise RuntimeError("action failed after the mutation")


@private_action.input(TokenIn).action
async def action_calls_all(ctx, input: TokenIn) -> dict[str, Any]:
    caller = create_caller(ctx, targets)
    counted = await caller.count(token=input.token)
    touched = await caller.touch(token=input.token)
    acted = await caller.actions.touch_action(token=input.token)
    return {"count": counted, "touch": touched, "action": acted}


@private_query.input(TokenIn).query
async def query_calls_mutation(ctx, input: TokenIn) -> None:
    await create_caller(ctx, targets).touch(token=input.token)


@private_mutation.input(TokenIn).mutation
async def mutation_calls_action(ctx, input: TokenIn) -> None:
    await create_caller(ctx, targets).actions.touch_action(token=input.token)


@private_query.input(TokenIn).query
async def query_schedules(ctx, input: TokenIn) -> None:
    await ctx.scheduler.run_after(0, "targets.touch", {"token": input.token})


@private_query.input(TargetIn).query
async def read_job(ctx, input: TargetIn) -> dict[str, Any] | None:
    """Reads the status table from inside a procedure."""
    job = await ctx.system.get(input.job_id)
    return None if job is None else job.model_dump(by_alias=True)


@private_mutation.input(TokenIn).mutation
async def schedule_query(ctx, input: TokenIn) -> None:
    await ctx.scheduler.run_after(0, "targets.count", {"token": input.token})


@private_mutation.input(TokenIn).mutation
async def refuse(ctx, input: TokenIn) -> None:
    raise CRPCError("NOT_FOUND", f"no order {input.token}", {"token": input.token})
