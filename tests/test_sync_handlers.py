"""docs/semantics.md §4: a plain ``def`` handler stuck past its timeout cannot starve the others."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

from helpers import token, wait_state
from kitcn_temporal import KitcnClient, create_caller
from kitcn_temporal.execution._threads import HandlerThreads
from testapp import threads
from testapp.probe import RUNS, wait_for

#: The threads of the event loop's default executor, which plain def handlers used to share.
SHARED_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)


async def test_a_stuck_sync_handler_does_not_delay_another_sync_handlers_job(
    kitcn: KitcnClient, caplog: pytest.LogCaptureFixture
) -> None:
    stuck_tok, quick_tok = token(), token()
    caplog.set_level(logging.WARNING, logger="kitcn_temporal")
    later = create_caller(kitcn, threads).schedule
    try:
        for _ in range(SHARED_EXECUTOR_THREADS + 1):
            await later.now.stuck(token=stuck_tok)
        await wait_for(lambda: len(RUNS[stuck_tok]) >= SHARED_EXECUTOR_THREADS, timeout=30)

        scheduled = time.monotonic()
        job_id = await later.now.quick(token=quick_tok)
        assert (await wait_state(kitcn, job_id, timeout=10)).state.kind == "success"
        ((_, started),) = RUNS[quick_tok]
        assert started - scheduled < 3
    finally:
        threads.release(stuck_tok).set()


async def test_an_attempt_that_ends_while_its_thread_runs_is_a_warning_naming_the_handler(
    kitcn: KitcnClient, caplog: pytest.LogCaptureFixture
) -> None:
    tok = token()
    caplog.set_level(logging.WARNING, logger="kitcn_temporal")
    try:
        await create_caller(kitcn, threads).schedule.now.stuck(token=tok)

        def warned() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith("threads.stuck: ")]

        (message, *_) = await wait_for(warned, timeout=30)
        assert "an attempt ended (timed out or canceled) while its plain def handler still runs" in message
        assert "threads are busy" in message
    finally:
        threads.release(tok).set()


# The pool itself: places, abandoned threads and their bound.


class Blocker:
    """A handler that blocks until released, recording that it started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.released = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        self.released.wait(30)
        return "returned"


async def test_a_call_waits_for_a_free_place() -> None:
    pool = HandlerThreads("pool.one", 1)
    first, second = Blocker(), Blocker()
    running = asyncio.ensure_future(pool.run(first))
    await wait_for(first.started.is_set)
    queued = asyncio.ensure_future(pool.run(second))
    await asyncio.sleep(0)
    assert not second.started.is_set() and pool.busy == 1

    first.released.set()
    second.released.set()

    assert await asyncio.gather(running, queued) == ["returned", "returned"]


async def test_an_ended_attempt_gives_its_place_to_a_new_one() -> None:
    pool = HandlerThreads("pool.two", 1)
    stuck, fresh = Blocker(), Blocker()
    attempt = asyncio.ensure_future(pool.run(stuck))
    await wait_for(stuck.started.is_set)
    attempt.cancel()
    try:
        fresh.released.set()
        assert await pool.run(fresh) == "returned"
        assert (pool.busy, pool.abandoned) == (1, 1)
    finally:
        stuck.released.set()
    await wait_for(lambda: pool.busy == 0)


async def test_abandoned_threads_free_places_only_up_to_the_pool_size() -> None:
    pool = HandlerThreads("pool.three", 1)
    first, second, third = Blocker(), Blocker(), Blocker()
    one = asyncio.ensure_future(pool.run(first))
    await wait_for(first.started.is_set)
    one.cancel()  # abandoned: its place frees
    two = asyncio.ensure_future(pool.run(second))
    await wait_for(second.started.is_set)
    two.cancel()  # the allowance is used up: this thread keeps its place
    three = asyncio.ensure_future(pool.run(third))
    await asyncio.sleep(0)
    assert not third.started.is_set() and (pool.busy, pool.abandoned) == (2, 1)

    first.released.set()  # an abandoned thread returns: the kept one gives its place up

    await wait_for(third.started.is_set)
    second.released.set()
    third.released.set()
    assert await three == "returned"
    await wait_for(lambda: pool.busy == 0)
