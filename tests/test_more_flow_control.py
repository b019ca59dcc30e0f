"""docs/semantics.md §15: debounce with max wait, ttl, fairness between tenants, rate limits per key."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from helpers import token, wait_state
from kitcn_temporal import App, CRPCError, KitcnClient, create_caller, private_action
from testapp import tenants
from testapp.probe import RUNS, wait_for

# -- debounce ---------------------------------------------------------------------------------


async def test_a_debounced_burst_runs_once_with_the_last_arguments_after_the_quiet_period(
    kitcn: KitcnClient,
) -> None:
    tok = token()
    schedule = create_caller(kitcn, tenants).schedule.debounce(f"s:{tok}", timedelta(seconds=1))
    ids = []
    for query in ("k", "ki", "kit", "kitc", "kitcn"):
        ids.append(await schedule.search(token=tok, query=query))
        await asyncio.sleep(0.1)
    last_call = time.monotonic() - 0.1
    assert len(set(ids)) == 1
    row = await kitcn.system.get(ids[0])
    assert row is not None and row.state.kind == "pending" and row.args == {"token": tok, "query": "kitcn"}
    assert row.scheduled_time - row.creation_time >= 1300  # moved by each call (0.4 s of calls + 1 s)
    assert (await wait_state(kitcn, ids[0])).state.kind == "success"
    ((query, started),) = RUNS[tok]
    assert query == "kitcn" and started - last_call >= 0.9


async def test_a_steady_stream_runs_at_least_once_per_max_wait(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, tenants).schedule.debounce(
        f"s:{tok}", timedelta(seconds=1), max_wait=timedelta(seconds=1.5)
    )
    ids, begun = [], time.monotonic()
    while time.monotonic() - begun < 5:  # a call every 0.2 s: never a 1 s pause
        ids.append(await schedule.search(token=tok, query=str(len(ids))))
        await asyncio.sleep(0.2)
    runs = await wait_for(lambda: RUNS[tok] if len(RUNS[tok]) >= 3 else None, timeout=20)
    assert len(set(ids)) >= 3  # each job that started, the next call made a new one
    starts = [begun, *(started for _, started in runs)]
    assert max(b - a for a, b in itertools.pairwise(starts[:4])) < 1.5 + 1.0  # max_wait, plus slack
    for job_id in set(ids):
        assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_a_debounced_call_from_a_mutation_is_atomic_and_returns_the_keys_job(kitcn: KitcnClient) -> None:
    tok = token()
    caller = create_caller(kitcn, tenants)
    with pytest.raises(CRPCError):
        await caller.debounce_then_fail(token=tok, query="never")
    first = await caller.debounce_from_a_mutation(token=tok, query="a")
    second = await caller.debounce_from_a_mutation(token=tok, query="ab")
    assert first == second
    assert (await wait_state(kitcn, first)).state.kind == "success"
    assert [q for q, _ in RUNS[tok]] == ["ab"]


async def test_a_debounce_key_pending_for_one_function_refuses_another(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, tenants).schedule.debounce(f"s:{tok}", 60_000)
    job_id = await schedule.search(token=tok, query="q")
    with pytest.raises(CRPCError) as err:
        await schedule.search_action(token=tok, query="q")
    assert err.value.code == "BAD_REQUEST" and "tenants.search" in err.value.message
    await kitcn.scheduler.cancel(job_id)
    assert (await wait_state(kitcn, job_id)).state.kind == "canceled"


# -- ttl ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tenants.search", "tenants.search_action"], ids=["mutation", "action"])
async def test_a_job_not_started_within_its_ttl_fails_as_expired_never_runs_and_its_on_complete_runs(
    client: Client, name: str
) -> None:
    tok, app = token(), App([tenants], task_queue=f"kitcn-ttl-{token()[:8]}")
    kitcn = KitcnClient(client, app)
    job_id = await kitcn.scheduler.run_after(
        0, name, {"token": tok, "query": "q"}, ttl=timedelta(seconds=1), on_complete="tenants.record_completion"
    )
    await asyncio.sleep(1.5)  # no worker yet: the job waits past its ttl
    async with Worker(client, task_queue=app.task_queue):
        job = await wait_state(kitcn, job_id)
        await wait_for(lambda: RUNS[job_id], timeout=20)
    assert job.state.kind == "failed" and "expired" in (job.state.error or "")
    assert RUNS[tok] == []
    assert RUNS[job_id][0]["kind"] == "failed" and "expired" in RUNS[job_id][0]["error"]


async def test_an_action_waiting_for_a_worker_slot_past_its_ttl_expires(client: Client) -> None:
    tok, app = token(), App([tenants], task_queue=f"kitcn-ttl-{token()[:8]}")
    kitcn = KitcnClient(client, app)
    blocker = await kitcn.scheduler.run_after(0, "tenants.index", {"token": tok, "tenant": "slow"})
    async with Worker(client, task_queue=app.task_queue, max_concurrent_activities=1):
        await wait_for(lambda: RUNS[tok])
        # The one slot is taken for 0.05 s a job: a backlog of 40 holds the last ones past 1 s.
        backlog = [
            await kitcn.scheduler.run_after(0, "tenants.index", {"token": tok, "tenant": "t"}, ttl=timedelta(seconds=1))
            for _ in range(40)
        ]
        rows = [await wait_state(kitcn, j, timeout=60) for j in (blocker, *backlog)]
    expired = [r for r in rows if r.state.kind == "failed"]
    assert expired and all("expired" in (r.state.error or "") for r in expired)
    assert len(RUNS[tok]) == 41 - len(expired)  # an expired job never ran


# -- fairness -----------------------------------------------------------------------------------


async def test_with_one_slot_a_tenant_queued_behind_another_gets_its_turns(client: Client) -> None:
    tok, app = token(), App([tenants], task_queue=f"kitcn-fair-{token()[:8]}")
    kitcn = KitcnClient(client, app)
    schedule = create_caller(kitcn, tenants).schedule.now
    for _ in range(24):
        await schedule.index(token=tok, tenant="big")
    small = [await schedule.index(token=tok, tenant="small") for _ in range(3)]
    # The worker comes once every job waits; one activity slot.
    async with Worker(client, task_queue=app.task_queue, max_concurrent_activities=1):
        await wait_for(lambda: len(RUNS[tok]) == 27, timeout=60)
    assert RUNS[tok][:10].count("small") == 3, RUNS[tok]
    row = await kitcn.system.get(small[0])
    assert row is not None and row.fairness_key == "small"


async def test_a_calls_fairness_key_and_weight_override_the_procedures(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, tenants).schedule.options(fairness_key="vip", fairness_weight=3)
    job_id = await schedule.now.index(token=tok, tenant="t1")
    row = await wait_state(kitcn, job_id)
    assert row.state.kind == "success" and row.fairness_key == "vip"


# -- rate limit per key ---------------------------------------------------------------------------


async def test_two_keys_under_a_rate_per_key_each_spread_over_time_side_by_side(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, tenants).schedule.now
    jobs = [await schedule.per_tenant(token=tok, tenant=t) for _ in range(8) for t in ("a", "b")]
    for job_id in jobs:
        assert (await wait_state(kitcn, job_id, timeout=60)).state.kind == "success"
    starts = {t: sorted(s for k, s in RUNS[tok] if k == t) for t in ("a", "b")}
    for tenant_starts in starts.values():  # 8 starts at 2 a second, after a small burst
        assert tenant_starts[-1] - tenant_starts[0] >= 2.0
    # Side by side: neither key waited for the other (16 starts at one rate would take twice as long).
    assert abs(starts["a"][-1] - starts["b"][-1]) < 1.5
    assert abs(starts["a"][0] - starts["b"][0]) < 1.0


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "option"),
    [
        (lambda s: s.debounce("k", 0).search(token="t", query="q"), "debounce period"),
        (lambda s: s.debounce("k", -5).search(token="t", query="q"), "debounce period"),
        (lambda s: s.debounce("k", 1000, max_wait=500).search(token="t", query="q"), "max_wait"),
        (lambda s: s.debounce("", 1000).search(token="t", query="q"), "debounce key"),
        (lambda s: s.debounce("k" * 201, 1000).search(token="t", query="q"), "debounce key"),
        (lambda s: s.options(key="k").debounce("k", 1000).search(token="t", query="q"), "idempotency key"),
        (lambda s: s.options(ttl=0).now.search(token="t", query="q"), "ttl"),
        (lambda s: s.options(ttl=timedelta(seconds=-1)).now.search(token="t", query="q"), "ttl"),
        (lambda s: s.options(fairness_weight=0).now.search(token="t", query="q"), "fairness_weight"),
        (lambda s: s.options(fairness_weight=5000).now.search(token="t", query="q"), "fairness_weight"),
        (lambda s: s.options(fairness_key="x" * 65).now.search(token="t", query="q"), "fairness_key"),
        (lambda s: s.options(fairness_key="é" * 33).now.search(token="t", query="q"), "fairness_key"),
        (lambda s: s.options(fairness_key="t").now.per_tenant(token="t", tenant="a"), "rate limited per key"),
        (lambda s: s.now.index(token="t", tenant="x" * 65), "fairness key of tenants.index"),
    ],
    ids=[
        "period 0",
        "period < 0",
        "max_wait < period",
        "empty debounce key",
        "debounce key too long",
        "debounce and idempotency key",
        "ttl 0",
        "ttl < 0",
        "weight 0",
        "weight 5000",
        "fairness key 65 bytes",
        "fairness key 66 UTF-8 bytes",
        "fairness key on a per-key rate",
        "key function returns 65 bytes",
    ],
)
async def test_a_bad_flow_control_option_is_a_bad_request_naming_it(kitcn: KitcnClient, call, option: str) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await call(create_caller(kitcn, tenants).schedule)
    assert err.value.code == "BAD_REQUEST" and option in err.value.message
    assert RUNS[tok] == []


@pytest.mark.parametrize(
    ("declare", "option"),
    [
        (lambda: private_action.fairness(weight=0), ".fairness(weight=...)"),
        (lambda: private_action.fairness(key="tenant"), ".fairness(key=...)"),  # type: ignore[arg-type]
        (lambda: private_action.rate_limit(per_second=1, key="tenant"), ".rate_limit(key=...)"),  # type: ignore[arg-type]
        (
            lambda: private_action.rate_limit(per_second=1, key=str).fairness(key=str).action(lambda ctx: None),
            ".rate_limit(key=...)",
        ),
    ],
    ids=["weight 0", "key not a function", "rate key not a function", "rate key and fairness key"],
)
def test_a_bad_flow_control_declaration_is_a_declaration_error(declare, option: str) -> None:
    with pytest.raises(CRPCError) as err:
        declare()
    assert err.value.code == "BAD_REQUEST" and option in err.value.message
