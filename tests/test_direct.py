"""docs/semantics.md §7: direct queries and mutations from a KitcnClient run in its process."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from helpers import executions_besides_jobs, token
from kitcn_temporal import App, CRPCError, KitcnClient, create_caller
from testapp import shapes, targets
from testapp.probe import RUNS


async def test_a_direct_query_and_a_schedule_free_mutation_create_no_workflow_execution(
    kitcn: KitcnClient,
) -> None:
    tok = token()
    before = await executions_besides_jobs(kitcn, tok)
    assert (await create_caller(kitcn, shapes).add(x=2, y=3)).total == 5
    assert await create_caller(kitcn, targets).touch(token=tok) == 1
    assert await executions_besides_jobs(kitcn, f"{tok}:after") == before


async def test_a_direct_query_and_mutation_need_no_worker(client: Client, app: App, kitcn: KitcnClient) -> None:
    unserved = KitcnClient(client, app, task_queue=f"nobody-serves-{token()[:8]}")
    tok = token()
    # On a worker, these would wait for one forever.
    assert (await asyncio.wait_for(create_caller(unserved, shapes).add(x=1, y=1), 10)).total == 2
    assert await asyncio.wait_for(create_caller(unserved, targets).touch(token=tok), 10) == 1
    assert [entry[0] for entry in RUNS[tok]] == ["touch"]  # it ran here, in this process


async def test_a_direct_mutation_gives_up_after_a_few_transient_failures(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await asyncio.wait_for(create_caller(kitcn, targets).always_transient(token=tok), 20)
    assert err.value.code == "INTERNAL_SERVER_ERROR"
    assert err.value.message == "ConnectionError: database unreachable"
    assert RUNS[tok] == ["attempt"] * 5  # retried here, with backoff, not forever by Temporal
