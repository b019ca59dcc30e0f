"""In-process records shared by the test app's procedures and the tests (the worker runs in
the test process), plus gates that hold an action until a test releases it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

RUNS: defaultdict[str, list[Any]] = defaultdict(list)
_GATES: dict[str, asyncio.Event] = {}


def gate(token: str) -> asyncio.Event:
    return _GATES.setdefault(token, asyncio.Event())


async def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
