"""Procedures for flow control v2: debounced searches, expiring codes, tenants' fair shares and
per-tenant rate limits."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from pydantic import BaseModel

from kitcn_temporal import Completion, create_caller, private_action, private_mutation

from .probe import RUNS


class SearchIn(BaseModel):
    token: str
    query: str


class TenantIn(BaseModel):
    token: str
    tenant: str


@private_mutation.input(SearchIn).mutation
async def search(ctx, input: SearchIn) -> None:
    """Records the query it ran with, and when."""
    RUNS[input.token].append((input.query, time.monotonic()))


@private_action.input(SearchIn).action
async def search_action(ctx, input: SearchIn) -> None:
    """An action with a search's input: another function for the same debounce key."""
    RUNS[input.token].append((input.query, time.monotonic()))


@private_mutation.input(SearchIn).mutation
async def debounce_from_a_mutation(ctx, input: SearchIn) -> str:
    """Debounces ``search`` from inside a mutation (buffered until it commits)."""
    caller = create_caller(ctx, sys.modules[__name__])
    return await caller.schedule.debounce(f"m:{input.token}", timedelta(seconds=1)).search(
        token=input.token, query=input.query
    )


@private_mutation.input(SearchIn).mutation
async def debounce_then_fail(ctx, input: SearchIn) -> None:
    """Debounces ``search``, then fails: the call never reaches the key."""
    caller = create_caller(ctx, sys.modules[__name__])
    await caller.schedule.debounce(f"m:{input.token}", timedelta(seconds=1)).search(
        token=input.token, query=input.query
    )
    raise ValueError("rolled back")


@private_mutation.input(Completion).mutation
async def record_completion(ctx, input: Completion) -> None:
    """An ``on_complete`` callback: records how the job ended, under the job's id."""
    RUNS[input.job_id].append(input.state.model_dump())


@private_action.input(TenantIn).fairness(key=lambda i: i.tenant).action
async def index(ctx, input: TenantIn) -> None:
    """One tenant's work: records its tenant in start order, and takes a moment."""
    RUNS[input.token].append(input.tenant)
    await asyncio.sleep(0.05)


@private_action.input(TenantIn).rate_limit(per_second=2, key=lambda i: i.tenant).action
async def per_tenant(ctx, input: TenantIn) -> None:
    """At most 2 starts a second for each tenant: records the tenant and the start time."""
    RUNS[input.token].append((input.tenant, time.monotonic()))
