"""Jobs' targets: each records its runs under the caller's token."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from pydantic import BaseModel
from temporalio.common import RetryPolicy

from kitcn_temporal import CRPCError, private_action, private_mutation, public_mutation, public_query

from .probe import RUNS, gate


class TokenIn(BaseModel):
    token: str


class PayloadIn(BaseModel):
    token: str
    blob: str = ""


@private_mutation.input(TokenIn).mutation
async def touch(ctx, input: TokenIn) -> int:
    RUNS[input.token].append(("touch", ctx.job, ctx.auth))
    return len(RUNS[input.token])


@private_action.input(TokenIn).action
async def touch_action(ctx, input: TokenIn) -> str:
    RUNS[input.token].append(("touch_action", ctx.job, ctx.auth))
    return "done"


@private_mutation.input(TokenIn).mutation
async def held_mutation(ctx, input: TokenIn) -> str:
    """Runs until the token's gate opens."""
    RUNS[input.token].append("started")
    await gate(input.token).wait()
    return "done"


@public_mutation.input(PayloadIn).mutation
async def take_payload(ctx, input: PayloadIn) -> int:
    RUNS[input.token].append(len(input.blob))
    return len(input.blob)


@private_action.input(TokenIn).action
async def held_action(ctx, input: TokenIn) -> str:
    """Runs until the test opens the token's gate."""
    RUNS[input.token].append("started")
    await gate(input.token).wait()
    RUNS[input.token].append("finished")
    return "released"


@private_mutation.input(TokenIn).mutation
async def developer_error(ctx, input: TokenIn) -> None:
    RUNS[input.token].append(ctx.job.attempt if ctx.job else 0)
    raise ValueError("bad things")


@private_mutation.input(TokenIn).mutation
async def flaky(ctx, input: TokenIn) -> int:
    """Fails twice with a transient error, then succeeds."""
    attempt = ctx.job.attempt
    RUNS[input.token].append(attempt)
    if attempt < 3:
        raise ConnectionError(f"database unreachable (attempt {attempt})")
    return attempt


class Retryable(Exception):
    pass


@private_mutation.input(TokenIn).retry(Retryable).mutation
async def flaky_declared(ctx, input: TokenIn) -> int:
    """Fails once with an error its .retry() declares transient."""
    RUNS[input.token].append(ctx.job.attempt)
    if ctx.job.attempt < 2:
        raise Retryable("declared transient")
    return ctx.job.attempt


@private_action.input(TokenIn).action
async def flaky_action(ctx, input: TokenIn) -> int:
    RUNS[input.token].append(ctx.job.attempt)
    raise ConnectionError("the network is down")


_QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3)


@private_action.input(TokenIn).retry(_QUICK).action
async def retried_action(ctx, input: TokenIn) -> int:
    RUNS[input.token].append(ctx.job.attempt)
    if ctx.job.attempt < 3:
        raise RuntimeError("try again")
    return ctx.job.attempt


@private_action.input(TokenIn).action
async def refusing_action(ctx, input: TokenIn) -> None:
    raise CRPCError("CONFLICT", "order already charged", {"order": input.token})


@public_query.input(TokenIn).query
async def count(ctx, input: TokenIn) -> int:
    return len(RUNS[input.token])


@public_mutation.input(TokenIn).mutation
def sync_touch(ctx, input: TokenIn) -> dict:
    """A plain def: it runs in a worker thread, off the event loop."""
    RUNS[input.token].append(threading.current_thread().name)
    return {"thread": threading.current_thread().name}


@private_mutation.input(TokenIn).mutation
async def always_transient(ctx, input: TokenIn) -> None:
    """Fails with a transient error on every attempt: it retries until canceled (a job) or gives up."""
    RUNS[input.token].append(ctx.job.attempt if ctx.job else "attempt")
    raise ConnectionError("database unreachable")


@private_mutation.input(TokenIn).timeout(timedelta(seconds=1)).mutation
async def always_overruns(ctx, input: TokenIn) -> None:
    """Times out on every attempt (its limit is 1 s): it retries until canceled."""
    RUNS[input.token].append(ctx.job.attempt)
    await asyncio.sleep(30)


_SLOW = RetryPolicy(initial_interval=timedelta(seconds=3), maximum_attempts=5)


@private_action.input(TokenIn).retry(_SLOW).action
async def slowly_retried_action(ctx, input: TokenIn) -> None:
    """Fails every attempt; attempts 3 s apart."""
    RUNS[input.token].append(ctx.job.attempt)
    raise RuntimeError("try again later")


@private_action.input(TokenIn).action
async def refuse_quoting(ctx, input: TokenIn) -> None:
    """Fails with a message that quotes its argument."""
    raise CRPCError("BAD_REQUEST", f"cannot take {input.token}", {"given": input.token})


@private_mutation.input(TokenIn).mutation
async def bulk_target(ctx, input: TokenIn) -> None:
    """Scheduled only by the bulk-work tests, which cancel every pending job of it."""
    RUNS[input.token].append("bulk")


@private_mutation.input(TokenIn).mutation
async def cancel_all_in_mutation(ctx, input: TokenIn) -> int:
    return await ctx.system.cancel_all(name="targets.bulk_target")
