"""Capped procedures (fleet-wide ``.concurrency``): each run writes when it starts and ends to a
ledger file that worker processes share, so the tests count overlaps across the fleet."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from kitcn_temporal import private_action, private_mutation

from .ledger import append


class HoldIn(BaseModel):
    ledger: str
    tag: str
    hold_ms: int = 300
    user: str = "u"


def user_key(input: HoldIn) -> str:
    return f"user:{input.user}"


async def hold(input: HoldIn) -> None:
    """Record the run's start and end (monotonic clock of the machine: every process shares it)."""
    append(input.ledger, f"start {time.monotonic():.6f} {input.tag} {input.user}")
    await asyncio.sleep(input.hold_ms / 1000)
    append(input.ledger, f"end {time.monotonic():.6f} {input.tag} {input.user}")


@private_action.input(HoldIn).concurrency(2).action
async def capped(ctx, input: HoldIn) -> None:
    """At most 2 at once across every worker."""
    await hold(input)


@private_action.input(HoldIn).worker_concurrency(1).concurrency(2).action
async def spread(ctx, input: HoldIn) -> None:
    """One at a time in each worker process, at most 2 at once across the fleet."""
    await hold(input)


@private_action.input(HoldIn).concurrency(1, key=user_key).action
async def per_user(ctx, input: HoldIn) -> None:
    """At most 1 at once per user, users side by side."""
    await hold(input)


@private_action.input(HoldIn).concurrency(3).concurrency(1, key=user_key).action
async def stacked(ctx, input: HoldIn) -> None:
    """At most 3 at once, and 1 per user."""
    await hold(input)


@private_mutation.input(HoldIn).concurrency(1).mutation
async def capped_mutation(ctx, input: HoldIn) -> None:
    """Mutations take slots too."""
    await hold(input)


@private_action.input(HoldIn).action
async def plain(ctx, input: HoldIn) -> None:
    """Uncapped: a pause holds it all the same."""
    await hold(input)


@private_action.input(HoldIn).concurrency(1, key=lambda i: 42).action  # type: ignore[arg-type,return-value]
async def bad_key(ctx, input: HoldIn) -> None:
    """Its key function returns an int: every schedule call is refused."""
