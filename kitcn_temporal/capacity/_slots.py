"""The client and activity side of the gates: asking for a slot, pausing, resuming.

* ``gate_activities(app)``: the local activities every worker registers: a job's slot request
  (signal-with-start on the procedure's gate, carrying the worker's current caps) and the
  gate's check of its holders.
* :func:`pause`, :func:`resume`, :func:`paused_names`, :func:`is_paused`: the namespace's
  pauses (``system.pause`` and ``kitcn-temporal jobs pause`` use them).

Layer: capacity.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from .._app import App
from .._wire import (
    GATE_CHECK_ACTIVITY,
    GATE_REQUEST_ACTIVITY,
    GATE_WORKFLOW,
    REQUEST_SIGNAL,
    SA_FUNCTION,
    SlotRequest,
    app_queue,
    gate_id,
)
from ._gate import SA_GATE, GateState

#: Gates listed at once by :func:`paused_names`.
_LIST_LIMIT = 1000
#: How long a worker trusts that a procedure is not paused before it asks its gate again;
#: :func:`pause` returns only after this long, so once it has returned no worker starts a job
#: of the procedure on an older answer. A job start then costs at most one describe of the
#: gate per procedure and worker process each second, not one per job.
NOT_PAUSED_TTL_S = 1.0
#: (task queue, procedure) -> until when (this process's monotonic clock) it is known not paused.
_not_paused_until: dict[tuple[str, str], float] = {}
#: The describe under way for a (task queue, procedure), if any.
_asking: dict[tuple[str, str], tuple[float, asyncio.Future[bool]]] = {}


def gate_activities(app: App) -> list[Callable[..., Any]]:
    """The local activities of the gates, registered on every worker of ``app``."""

    @activity.defn(name=GATE_REQUEST_ACTIVITY)
    async def request_slot(req: SlotRequest) -> None:
        proc = app.procedures.get(req.name)
        # This worker's definition: a deploy that changes a cap governs the grants after it.
        limits = (None, None) if proc is None else (proc.concurrency, proc.key_concurrency)
        req = dataclasses.replace(req, limit=limits[0], key_limit=limits[1])
        queue = app_queue(activity.info().task_queue, req.name)
        await ask(activity.client(), queue, req)

    @activity.defn(name=GATE_CHECK_ACTIVITY)
    async def closed_holders(holders: list[str]) -> list[str]:
        client = activity.client()
        open_ = await asyncio.gather(*(_running(client, h) for h in holders))
        return [h for h, running in zip(holders, open_, strict=True) if not running]

    return [request_slot, closed_holders]


async def ask(client: Client, task_queue: str, req: SlotRequest) -> None:
    """Ask ``req.name``'s gate for a slot (signal-with-start: the gate starts if it does not
    run yet); the gate answers the run with a signal."""
    await client.start_workflow(
        GATE_WORKFLOW,
        GateState(name=req.name),
        id=gate_id(req.name, task_queue),
        task_queue=task_queue,
        start_signal=REQUEST_SIGNAL,
        start_signal_args=[req],
        static_summary=_summary(req.name),
    )


async def pause(client: Client, task_queue: str, name: str) -> bool:
    """Pause procedure ``name`` in the namespace; ``False`` if it was paused already.

    Returns once every worker's earlier "not paused" answer has expired
    (:data:`NOT_PAUSED_TTL_S`): from then on no job of it starts until it is resumed.
    """
    paused: bool = await client.execute_update_with_start_workflow(
        "pause", start_workflow_operation=_start(name, task_queue), result_type=bool
    )
    await asyncio.sleep(NOT_PAUSED_TTL_S)
    return paused


async def paused_before_start(client: Client, task_queue: str, name: str) -> bool:
    """:func:`is_paused`, for a job about to start: a "not paused" answer is trusted for
    :data:`NOT_PAUSED_TTL_S` (taken from before the describe was sent)."""
    key = (task_queue, name)
    if _not_paused_until.get(key, 0.0) > time.monotonic():
        return False
    now = time.monotonic()
    asked, asking = _asking.get(key, (0.0, None))
    # One describe at a time per procedure, shared by a burst of starts; one sent too long ago
    # could answer from before a pause() that has returned since, so it is not joined.
    if asking is None or asked + NOT_PAUSED_TTL_S <= now:
        asked, asking = now, asyncio.ensure_future(_ask_paused(client, task_queue, name, now))
        _asking[key] = (asked, asking)
        asking.add_done_callback(functools.partial(_forget, key))
    return await asyncio.shield(asking)


def _forget(key: tuple[str, str], done: asyncio.Future[bool]) -> None:
    if _asking.get(key, (0.0, None))[1] is done:
        del _asking[key]


async def _ask_paused(client: Client, task_queue: str, name: str, asked: float) -> bool:
    key = (task_queue, name)
    paused = await is_paused(client, task_queue, name)
    if paused:
        _not_paused_until.pop(key, None)
    else:
        _not_paused_until[key] = asked + NOT_PAUSED_TTL_S
    return paused


async def resume(client: Client, task_queue: str, name: str) -> bool:
    """Resume procedure ``name``; ``False`` if it was not paused."""
    try:
        resumed: bool = await client.get_workflow_handle(gate_id(name, task_queue)).execute_update(
            "resume", result_type=bool
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False  # no gate: never paused, nothing waits
        raise
    return resumed


async def is_paused(client: Client, task_queue: str, name: str) -> bool:
    """Whether procedure ``name`` is paused (one strongly consistent describe of its gate)."""
    desc = await _describe_running(client, gate_id(name, task_queue))
    return desc is not None and desc.typed_search_attributes.get(SA_GATE) == "paused"


async def paused_names(client: Client, task_queue: str, known: Iterable[str] = ()) -> list[str]:
    """The paused procedures of the namespace, sorted: those of ``known`` (the app's on
    ``task_queue``) read at once, a describe each; the others from visibility (about a second late)."""
    known = sorted(set(known))
    listed: set[str] = set()
    query = f"WorkflowType = '{GATE_WORKFLOW}' AND ExecutionStatus = 'Running' AND {SA_GATE.name} = 'paused'"
    async for execution in client.list_workflows(query, limit=_LIST_LIMIT):
        name = execution.typed_search_attributes.get(SA_FUNCTION)
        if name is not None and name not in known:
            listed.add(name)
    flags = await asyncio.gather(*(is_paused(client, task_queue, name) for name in known))
    return sorted(listed | {name for name, paused in zip(known, flags, strict=True) if paused})


def _start(name: str, task_queue: str) -> WithStartWorkflowOperation[Any, Any]:
    return WithStartWorkflowOperation(
        GATE_WORKFLOW,
        GateState(name=name),
        id=gate_id(name, task_queue),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=_summary(name),
    )


def _summary(name: str) -> str:
    return f"gate of {name}: its fleet-wide slots and pause"


async def _running(client: Client, workflow_id: str) -> bool:
    return await _describe_running(client, workflow_id) is not None


async def _describe_running(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The description of ``workflow_id`` while it runs; ``None`` once it has closed or if it
    never existed."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return desc if desc.status == WorkflowExecutionStatus.RUNNING else None
