"""A run's passage through its procedure's gate, from inside its workflow.

The workflow side of ``_gate``: the job workflow (and a direct call's) asks for a slot through
the local activity of ``_slots`` (signal-with-start on the gate), waits for the gate's grant
signal when queued, and signals its release when it ends.

Deterministic code, replayed from history; imports only ``_wire``.

Layer: capacity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

from .._wire import (
    GATE_REQUEST_ACTIVITY,
    MEMO_WAITING,
    RELEASE_SIGNAL,
    SlotAnswer,
    SlotRequest,
    gate_id,
)


class Slot:
    """A run's passage through its procedure's gate (``capacity``'s gate workflow).

    :meth:`acquire` asks through a local activity (signal-with-start on the gate) and waits for
    the gate's answer, a signal the workflow hands to :meth:`answer` (queued first, with why,
    when every slot is taken); :meth:`release` gives a held slot back (also for a run canceled
    while it waited).
    """

    def __init__(self) -> None:
        self.request: SlotRequest | None = None
        self.granted = False
        #: The gate let the run through (its attempts may start).
        self.passed = False
        #: The run holds a slot to give back when it ends, or a place in the queue.
        self.holds = False
        #: Its row says why it waits.
        self.waiting = False

    def configure(self, request: SlotRequest) -> None:
        self.request = request

    def answer(self, answer: SlotAnswer) -> None:
        """The gate's answer: granted (holding a slot, or let through a pause), or queued."""
        if self.granted:
            return
        if answer.granted:
            self.granted = True
            self.holds = answer.holds
            if self.waiting:
                workflow.upsert_memo({MEMO_WAITING: None})
        else:
            self.waiting = True
            workflow.upsert_memo({MEMO_WAITING: answer.waiting})

    async def acquire(self, wait: Callable[[Callable[[], bool]], Awaitable[None]] | None = None) -> None:
        """Pass the gate; ``wait(granted)`` waits for the grant when queued (default: for ever)."""
        request = self.request
        if request is None or self.passed:
            self.passed = True
            return
        self.holds = True  # from the request on: a place to give back if it ends waiting
        await workflow.execute_local_activity(
            GATE_REQUEST_ACTIVITY, request, start_to_close_timeout=timedelta(seconds=30)
        )
        await (wait or workflow.wait_condition)(lambda: self.granted)
        self.passed = True

    async def release(self) -> None:
        if not self.holds or self.request is None:
            return
        self.holds = False
        try:
            await workflow.get_external_workflow_handle(gate_id(self.request.name, workflow.info().task_queue)).signal(
                RELEASE_SIGNAL, self.request.holder
            )
        except FailureError as err:  # the gate is gone: nothing holds the slot any more
            workflow.logger.warning("could not give back the slot of %s: %s", self.request.holder, err)
