"""Threads for plain ``def`` handlers: each procedure has a bounded pool of its own.

Python cannot stop a thread, so a handler that overruns its timeout keeps its thread. Each
plain-``def`` procedure therefore runs in threads of its own, at most ``size`` attempts at
once: a stuck handler can exhaust only its own pool, never another procedure's. An attempt
that ends (timed out, canceled) while its thread still runs *abandons* the thread and frees
its place for new attempts, but only ``size`` abandoned threads at a time do: beyond, the
thread keeps its place until it returns. So a procedure never has more than ``2 * size``
threads, and retries of a stuck handler cannot pile threads up without bound.

The threads are daemon threads: a stuck handler never keeps the process from exiting.

Layer: execution.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("kitcn_temporal")


@dataclass(eq=False)
class _Call:
    """One attempt's handler call, and what became of it."""

    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    started: bool = False
    finished: bool = False
    #: The attempt ended before the handler returned, and gave its place up.
    abandoned: bool = False
    outcome: tuple[bool, Any] = field(default=(False, None))


class HandlerThreads:
    """The threads of one plain-``def`` procedure: ``await threads.run(fn)``.

    :param name: the procedure, as warnings name it.
    :param size: how many attempts run at once (and how many abandoned threads may stop
        holding a place).
    """

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        #: Threads holding a place: running attempts, and abandoned ones beyond the allowance.
        self._placed = 0
        #: Threads whose attempt ended and which gave their place up.
        self._abandoned = 0
        #: Calls whose attempt ended while the allowance was used up: they keep their place
        #: until an abandoned thread returns (or they do).
        self._kept: list[_Call] = []
        self._waiting: collections.deque[_Call] = collections.deque()

    @property
    def busy(self) -> int:
        """Threads still running a handler (for an attempt or abandoned)."""
        return self._placed + self._abandoned

    @property
    def abandoned(self) -> int:
        """Threads still running a handler whose attempt has ended."""
        return self._abandoned

    async def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in one of the procedure's threads, once a place is free."""
        loop = asyncio.get_running_loop()
        call = _Call(fn, loop, loop.create_future())
        with self._lock:
            self._waiting.append(call)
            ready = self._take_next()
        self._start(ready)
        try:
            return await call.future
        except BaseException:  # the attempt ended (timeout, cancel) before the handler returned
            self._attempt_ended(call)
            raise

    def _take_next(self) -> _Call | None:
        """The next waiting call, given a place, if one is free (the lock is held)."""
        if self._waiting and self._placed < self.size:
            self._placed += 1
            call = self._waiting.popleft()
            call.started = True
            return call
        return None

    def _start(self, call: _Call | None) -> None:
        if call is not None:
            threading.Thread(target=self._work, args=(call,), name=f"kitcn {self.name}", daemon=True).start()

    def _work(self, call: _Call) -> None:
        try:
            call.outcome = (True, call.fn())
        except BaseException as err:  # delivered to the attempt, which raises it
            call.outcome = (False, err)
        with self._lock:
            call.finished = True
            if call.abandoned:
                self._abandoned -= 1
                if self._kept:  # the allowance has room again: a kept thread gives its place up
                    self._abandon(self._kept.pop(0))
            else:
                if call in self._kept:
                    self._kept.remove(call)
                self._placed -= 1
            ready = self._take_next()
        self._start(ready)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for the result any more
            call.loop.call_soon_threadsafe(_deliver, call)

    def _attempt_ended(self, call: _Call) -> None:
        with self._lock:
            if not call.started:
                self._waiting.remove(call)
                return
            if call.finished:
                return
            kept = self._abandoned >= self.size
            if kept:
                self._kept.append(call)
            else:
                self._abandon(call)
            ready = self._take_next()
            busy, abandoned = self.busy, self._abandoned
        self._start(ready)
        logger.warning(
            "%s: an attempt ended (timed out or canceled) while its plain def handler still runs in its "
            "thread, which Python cannot stop; %d of its threads are busy, %d of them abandoned%s",
            self.name,
            busy,
            abandoned,
            f" (as many as may be: this one keeps its place, and new attempts of {self.name} can wait)" if kept else "",
        )

    def _abandon(self, call: _Call) -> None:
        """``call``'s thread stops holding a place (the lock is held)."""
        call.abandoned = True
        self._abandoned += 1
        self._placed -= 1


def _deliver(call: _Call) -> None:
    if call.future.done():  # the attempt has ended already
        return
    ok, value = call.outcome
    if ok:
        call.future.set_result(value)
    else:
        call.future.set_exception(value)
