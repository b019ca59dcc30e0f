"""A procedure's gate: its fleet-wide slots and its pause, as one Temporal workflow.

The resource-pool pattern: one long-lived workflow per procedure name (``kitcn-gate:<name>``)
holds who runs (``holders``) and who waits (``waiters``). A run asks with a signal (its
worker's request activity, signal-with-start) and is answered with a signal: let through, or
queued (with why). A queued run waits in its own workflow for the gate's grant; every run that holds a slot
signals its release when it ends (also when canceled while waiting). Waiters get slots by
priority, then fairness (the fairness key served least, by weight), then due time, then arrival.

A holder that ends without its release (terminated by an operator) is found by a check the
gate runs only while runs wait and no slot is free: every :data:`LEASE_CHECK` it asks a local
activity which holders are closed. A holder whose worker died is not such a case: its job
workflow lives on, notices the lost activity within its heartbeat timeout, and releases.

The history stays bounded: the gate continues as new with its state when Temporal suggests it.

Deterministic code, replayed from history; imports only ``_wire``. Like the job workflow it
runs outside the sandbox (it never runs user code).

Layer: capacity.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from .._wire import (
    GATE_CHECK_ACTIVITY,
    GATE_WORKFLOW,
    GRANT_SIGNAL,
    RELEASE_SIGNAL,
    REQUEST_SIGNAL,
    SA_FUNCTION,
    SlotAnswer,
    SlotRequest,
)
from ..ops._metrics import record_waiting

#: While runs wait and every slot is taken, how often the gate checks that its holders still run.
LEASE_CHECK = timedelta(seconds=30)
#: Continue as new past this many events even if Temporal does not suggest it yet.
MAX_HISTORY_EVENTS = 4000
#: The gate's state as a search attribute: ``open`` or ``paused`` (``jobs paused`` lists these).
SA_GATE = SearchAttributeKey.for_keyword("KitcnState")
DEFAULT_PRIORITY = 3


@dataclass
class GateState:
    """Everything a gate knows; carried across continue-as-new."""

    name: str
    limit: int | None = None
    key_limit: int | None = None
    paused: bool = False
    #: Holder (workflow id) -> its key.
    holders: dict[str, str | None] = field(default_factory=dict)
    waiters: list[SlotRequest] = field(default_factory=list)
    #: Fairness key -> slots granted, each weighted 1 / weight: the least served goes first.
    served: dict[str, float] = field(default_factory=dict)


@workflow.defn(name=GATE_WORKFLOW, sandboxed=False)
class GateWorkflow:
    """One procedure's slots and pause. Signals: ``kitcn_request``, ``kitcn_release``; updates:
    ``pause``, ``resume``."""

    @workflow.init
    def __init__(self, state: GateState) -> None:
        # The state is known before any handler runs (signal-with-start delivers the first
        # request with the start).
        self.state = state
        self._signals: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, state: GateState) -> None:
        self._publish()
        while not _should_continue_as_new():
            await self._idle(self._contended())
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._signals)
        workflow.continue_as_new(self.state)

    async def _idle(self, contended: bool) -> None:
        """Wait for a reason to act: continue as new, or contention that changes; while
        contended, check the holders every :data:`LEASE_CHECK`."""
        try:
            await workflow.wait_condition(
                lambda: _should_continue_as_new() or self._contended() != contended,
                timeout=LEASE_CHECK if contended else None,
            )
        except asyncio.TimeoutError:
            await self._check_holders()

    # -- handlers ---------------------------------------------------------------------------

    @workflow.signal(name=REQUEST_SIGNAL)
    def request(self, req: SlotRequest) -> None:
        """Let a run through now, or queue it; the run hears which from a ``kitcn_grant`` signal
        (a signal, not an update: a burst of requests meets no limit of updates in flight)."""
        state = self.state
        if req.name != state.name:
            workflow.logger.warning("gate of %s ignored a request for %s", state.name, req.name)
            return
        state.limit, state.key_limit = req.limit, req.key_limit  # the newest definition governs
        if req.holder in state.holders:  # asked again (a retried request): the same answer
            self._answer(req.holder, SlotAnswer(granted=True, holds=True))
            return
        if not self._capped() and not state.paused:
            self._answer(req.holder, SlotAnswer(granted=True))
            return
        if not any(w.holder == req.holder for w in state.waiters):
            state.waiters.append(req)
        self._grant_ready()
        if any(w.holder == req.holder for w in state.waiters):
            self._answer(req.holder, SlotAnswer(granted=False, waiting=self.waiting_for(req)))
        self._count_waiting()

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, holder: str) -> None:
        """A holder ended, or a waiter was canceled: its slot (or its place) is free."""
        self.state.holders.pop(holder, None)
        self.state.waiters = [w for w in self.state.waiters if w.holder != holder]
        self._grant_ready()
        self._count_waiting()

    @workflow.update(name="pause")
    def pause(self) -> bool:
        """Hold every run that has not started; returns whether it was running before."""
        was = not self.state.paused
        self.state.paused = True
        self._publish()
        self._count_waiting()
        return was

    @workflow.update(name="resume")
    def resume(self) -> bool:
        """Let waiting runs through, in order; returns whether it was paused."""
        was = self.state.paused
        self.state.paused = False
        self._publish()
        self._grant_ready()
        self._count_waiting()
        return was

    @workflow.query(name="state")
    def describe(self) -> GateState:
        return self.state

    # -- granting ---------------------------------------------------------------------------

    def waiting_for(self, req: SlotRequest) -> str:
        """Why ``req`` waits, as its job's row says it."""
        state = self.state
        if state.paused:
            return "paused"
        if state.limit is not None and len(state.holders) >= state.limit:
            return f"concurrency: {len(state.holders)} of {state.limit} running"
        if state.key_limit is not None and req.key is not None:
            used = self._key_use(req.key)
            if used >= state.key_limit:
                return f"concurrency {req.key}: {used} of {state.key_limit} running"
        return "concurrency: waiting for a slot"

    def _contended(self) -> bool:
        """Runs wait that a free slot would let through: only then may a holder have leaked."""
        return bool(self.state.waiters) and not self.state.paused and self._capped() and not self._grantable()

    def _capped(self) -> bool:
        return self.state.limit is not None or self.state.key_limit is not None

    def _key_use(self, key: str) -> int:
        return sum(1 for k in self.state.holders.values() if k == key)

    def _fits(self, req: SlotRequest) -> bool:
        state = self.state
        if state.limit is not None and len(state.holders) >= state.limit:
            return False
        return state.key_limit is None or req.key is None or self._key_use(req.key) < state.key_limit

    def _grantable(self) -> bool:
        return any(self._fits(w) for w in self.state.waiters)

    def _order(self, req: SlotRequest) -> tuple[int, float, int]:
        priority = DEFAULT_PRIORITY if req.priority is None else req.priority
        return priority, self.state.served.get(req.fairness_key or "", 0.0), req.due_ms

    def _grant_ready(self) -> None:
        """Grant every waiter that fits, best first; each is signaled."""
        state = self.state
        if state.paused:
            return
        while True:
            fitting = [w for w in state.waiters if not self._capped() or self._fits(w)]
            if not fitting:
                return
            best = min(fitting, key=self._order)  # min keeps arrival order among equals
            state.waiters.remove(best)
            if self._capped():
                state.holders[best.holder] = best.key
                fairness = best.fairness_key or ""
                state.served[fairness] = state.served.get(fairness, 0.0) + 1.0 / max(best.fairness_weight, 1e-6)
            self._answer(best.holder, SlotAnswer(granted=True, holds=self._capped()))

    def _answer(self, holder: str, answer: SlotAnswer) -> None:
        task = asyncio.create_task(self._deliver(holder, answer))
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _deliver(self, holder: str, answer: SlotAnswer) -> None:
        try:
            await workflow.get_external_workflow_handle(holder).signal(GRANT_SIGNAL, answer)
        except Exception:  # the holder is gone (terminated, or ended meanwhile): free its place
            self.state.holders.pop(holder, None)
            self.state.waiters = [w for w in self.state.waiters if w.holder != holder]
            self._grant_ready()

    async def _check_holders(self) -> None:
        """Free the slots of holders that ended without giving them back."""
        holders = sorted(self.state.holders)
        if not holders:
            return
        closed: list[str] = await workflow.execute_local_activity(
            GATE_CHECK_ACTIVITY, holders, result_type=list[str], start_to_close_timeout=timedelta(seconds=30)
        )
        for holder in closed:
            self.state.holders.pop(holder, None)
        if closed:
            workflow.logger.warning("gate %s: freed the slots of ended holders %s", self.state.name, closed)
            self._grant_ready()

    def _count_waiting(self) -> None:
        """The ``kitcn_jobs_waiting`` gauge (replay-safe: the meter records nothing on replay)."""
        waiting = len(self.state.waiters)
        meter = workflow.metric_meter()
        record_waiting(meter, self.state.name, "paused", waiting if self.state.paused else 0)
        record_waiting(meter, self.state.name, "concurrency", 0 if self.state.paused else waiting)

    def _publish(self) -> None:
        workflow.upsert_search_attributes(
            [SA_FUNCTION.value_set(self.state.name), SA_GATE.value_set("paused" if self.state.paused else "open")]
        )


def _should_continue_as_new() -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY_EVENTS
