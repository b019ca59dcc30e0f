"""Procedures with flow control: priorities, a rate limit, a concurrency limit, keyed schedules."""

from __future__ import annotations

import asyncio
import sys
import time

from pydantic import BaseModel

from kitcn_temporal import create_caller, private_action, private_mutation

from .probe import RUNS


class TokenIn(BaseModel):
    token: str


class KeyedIn(BaseModel):
    token: str
    key: str
    value: int = 0


@private_mutation.input(TokenIn).mutation
async def record_order(ctx, input: TokenIn) -> None:
    """Appends its job id: the order in which jobs started."""
    RUNS[input.token].append(ctx.job.id)


@private_mutation.input(TokenIn).priority(1).mutation
async def urgent(ctx, input: TokenIn) -> None:
    """Its jobs default to priority 1."""
    RUNS[input.token].append(ctx.job.id)


@private_action.input(TokenIn).rate_limit(per_second=2).action
async def limited(ctx, input: TokenIn) -> None:
    """At most 2 starts a second, whatever the number of workers."""
    RUNS[input.token].append(time.monotonic())


_running: dict[str, int] = {}


@private_action.input(TokenIn).worker_concurrency(2).action
async def render(ctx, input: TokenIn) -> None:
    """At most 2 at once in a worker process: records how many run when it starts."""
    _running[input.token] = _running.get(input.token, 0) + 1
    RUNS[input.token].append(_running[input.token])
    await asyncio.sleep(0.4)
    _running[input.token] -= 1


@private_mutation.input(TokenIn).worker_concurrency(1).mutation
async def serial_mutation(ctx, input: TokenIn) -> int:
    """A limited mutation runs as a regular activity on its own queue."""
    RUNS[input.token].append(ctx.job.id)
    return len(RUNS[input.token])


@private_mutation.input(KeyedIn).mutation
async def schedule_keyed(ctx, input: KeyedIn) -> str:
    """Schedules ``record_order`` under ``key`` from inside a mutation (buffered)."""
    caller = create_caller(ctx, sys.modules[__name__])
    return await caller.schedule.options(key=input.key).after(60_000).record_order(token=input.token)


@private_mutation.input(KeyedIn).mutation
async def schedule_keyed_then_fail_once(ctx, input: KeyedIn) -> str:
    """Schedules under ``key``, then fails its first attempt transiently: the retry reuses the key."""
    caller = create_caller(ctx, sys.modules[__name__])
    job_id = await caller.schedule.options(key=input.key).after(60_000).record_order(token=input.token)
    RUNS[f"{input.token}:attempts"].append(ctx.job.attempt)
    if ctx.job.attempt == 1:
        raise ConnectionError("lost the database after scheduling")
    return job_id


@private_action.input(TokenIn).worker_concurrency(1).action
async def limited_scheduler(ctx, input: TokenIn) -> str:
    """A limited action (on its own task queue) that schedules a job: the job runs where jobs run."""
    return await create_caller(ctx, sys.modules[__name__]).schedule.now.record_order(token=input.token)
