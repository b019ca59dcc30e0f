"""Running one procedure: input validation, middleware, handler, output validation, its
unit, its context, its database transaction and its schedules.

Layer: execution: the one home of running a procedure, shared by the activities (jobs
and direct calls) and by in-process calls made through a caller from inside a procedure.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.service import RPCError

from .._app import App
from .._errors import CRPCError
from .._wire import Kind
from ..crons._runtime import Crons
from ..crons._schedules import apply_change
from ..jobs._scheduler import Scheduler
from ..jobs._status import SystemTable
from ..jobs._unit import Mode, Unit
from ..procedures._codec import check_output, decode_output, encode_output, validate_input
from ..procedures._procedures import Procedure
from ._context import ActionCtx, BaseCtx, JobInfo, MutationCtx, QueryCtx
from ._threads import HandlerThreads

logger = logging.getLogger("kitcn_temporal")

#: Always transient: a retry may well succeed.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, RPCError)
#: A query or mutation run in this process (``unit.in_process``): attempts on transient
#: errors, and the first backoff (doubled each time), as Convex retries an action's ``runMutation``.
IN_PROCESS_ATTEMPTS = 5
IN_PROCESS_BACKOFF_S = 0.1

_CTX_TYPES: dict[Kind, type[BaseCtx]] = {"query": QueryCtx, "mutation": MutationCtx, "action": ActionCtx}


def make_ctx(kind: Kind, app: App, unit: Unit, *, auth: Any, job: JobInfo | None, proc: Procedure) -> BaseCtx:
    """The context a ``kind`` procedure receives when it runs in ``unit``."""
    scheduler = Scheduler(app, unit, readonly=kind == "query")
    return _CTX_TYPES[kind](
        app=app,
        unit=unit,
        scheduler=scheduler,
        system=SystemTable(unit.jobs.client, scheduler),
        crons=Crons(app, unit, readonly=kind == "query"),
        auth=auth,
        job=job,
        meta=proc.meta,
    )


_UNIT_MODES: dict[Kind, Mode] = {"query": "none", "mutation": "buffered", "action": "immediate"}


def unit_mode_for(kind: Kind) -> Mode:
    """How a ``kind`` procedure's schedules take effect: refused, buffered or immediate."""
    return _UNIT_MODES[kind]


def is_transient(app: App, proc: Procedure, err: BaseException) -> bool:
    """Whether a retry of query or mutation ``proc`` may succeed after ``err``: lost
    connections and timeouts, database conflicts, and what its ``.retry(...)`` lists.
    Anything else is a developer error."""
    return isinstance(err, TRANSIENT_ERRORS + proc.transient) or (app.store is not None and app.store.is_transient(err))


async def run_procedure(
    app: App, proc: Procedure, name: str, unit: Unit, *, auth: Any, job: JobInfo | None, args: Any
) -> Any:
    """Run ``proc`` as the top of ``unit`` and return its output as JSON-ready data.

    A mutation's schedules and cancels are applied once it has succeeded (and, with a
    database, once its transaction has committed together with the record of them). A
    query or mutation run in this process (``unit.in_process``) is retried here on transient
    errors, a few times with backoff; a job's attempts are retried by Temporal instead.
    """
    if proc.kind == "action" or not unit.in_process:
        return await _run_once(app, proc, name, unit, auth=auth, job=job, args=args)
    for attempt in range(1, IN_PROCESS_ATTEMPTS + 1):
        try:
            return await _run_once(app, proc, name, unit, auth=auth, job=job, args=args)
        except Exception as err:
            if attempt == IN_PROCESS_ATTEMPTS or not is_transient(app, proc, err):
                raise
            logger.info("retrying %s (%s) after a transient error: %s", name, unit.exec_id, err)
        # The failed attempt scheduled nothing: its buffered calls start over.
        unit.reset()
        await asyncio.sleep(IN_PROCESS_BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


async def _run_once(
    app: App, proc: Procedure, name: str, unit: Unit, *, auth: Any, job: JobInfo | None, args: Any
) -> Any:
    ctx = make_ctx(proc.kind, app, unit, auth=auth, job=job, proc=proc)

    async def body() -> Any:
        output = await _encoded(proc, name, ctx, args)
        # From here on a mutation commits and starts its jobs, whatever happens to its job.
        unit.committing = proc.kind == "mutation"
        return output

    if proc.kind == "mutation" and app.store is not None:
        output: Any = await app.store.run_mutation(unit, name, body)
    elif proc.kind == "query" and app.store is not None:
        async with app.store.read_session(unit):
            output = await body()
    else:
        output = await body()
    if proc.kind == "mutation":
        await unit.flush(apply_change)
    return output


async def _encoded(proc: Procedure, name: str, ctx: BaseCtx, args: Any) -> Any:
    return encode_output(proc, name, await invoke(proc, name, ctx, args))


async def call_in_process(parent: BaseCtx, proc: Procedure, args: Any) -> Any:
    """A direct call from inside a procedure, following kitcn's caller rules.

    From a query: queries only. From a mutation: queries and mutations, inside the
    calling mutation's unit. From an action: a query or mutation runs as a unit of its
    own; an action runs in-process with its own limits.
    """
    app = parent.app
    name = app.name_of(proc)
    parent_kind = _kind_of(parent)
    unit: Unit = parent._unit
    if proc.kind == "action" and parent_kind != "action":
        raise CRPCError(
            "BAD_REQUEST",
            f"{name} is an action: actions can be called only from an action or a client",
        )
    if parent_kind == "query" and proc.kind != "query":
        raise CRPCError("BAD_REQUEST", f"{name} is a {proc.kind}: a query can call only queries")
    if parent_kind != "action":
        # Same unit: a mutation's nested calls share its transaction and its buffer.
        ctx = make_ctx(proc.kind, app, unit, auth=parent.auth, job=parent.job, proc=proc)
        return await invoke(proc, name, ctx, args)
    child = Unit(unit_mode_for(proc.kind), str(uuid.uuid4()), unit.jobs, parent=unit, in_process=True)
    output = await run_procedure(app, proc, name, child, auth=parent.auth, job=parent.job, args=args)
    return decode_output(proc, output)


def _kind_of(ctx: BaseCtx) -> Kind:
    for kind, ctx_type in _CTX_TYPES.items():
        if isinstance(ctx, ctx_type):
            return kind
    raise TypeError(f"not a procedure context: {ctx!r}")


async def invoke(proc: Procedure, name: str, ctx: BaseCtx, args: Any) -> Any:
    """Run ``proc`` in-process: input validation, middleware, handler, output validation."""
    value = validate_input(proc, name, args)
    outcome: list[Any] = []

    async def handler(c: Any) -> Any:
        if outcome:
            raise CRPCError("INTERNAL_SERVER_ERROR", f"a middleware of {name} called next() twice")
        call_args = (c, value) if proc.takes_input else (c,)
        if proc.is_async:
            result = await proc.fn(*call_args)
        else:  # a plain def runs off the event loop, in its procedure's own threads
            call = functools.partial(contextvars.copy_context().run, proc.fn, *call_args)
            result = await handler_threads(ctx.app, name).run(call)
        outcome.append(result)
        return result

    chain: Callable[[Any], Awaitable[Any]] = handler
    for mw in reversed(proc.middleware):
        chain = _bind(mw, chain)
    await chain(ctx)
    if not outcome:
        raise CRPCError(
            "INTERNAL_SERVER_ERROR",
            f"a middleware of {name} returned without calling next(ctx) or raising an error",
        )
    return check_output(proc, name, outcome[0])


#: Each app's threads for its plain ``def`` procedures, by procedure name.
_THREADS: weakref.WeakKeyDictionary[App, dict[str, HandlerThreads]] = weakref.WeakKeyDictionary()


def handler_threads(app: App, name: str) -> HandlerThreads:
    """The threads of ``app``'s plain ``def`` procedure ``name`` (made on first use)."""
    pools = _THREADS.setdefault(app, {})
    threads = pools.get(name)
    if threads is None:
        threads = pools[name] = HandlerThreads(name, app.sync_handler_threads)
    return threads


def _bind(
    mw: Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]],
    nxt: Callable[[Any], Awaitable[Any]],
) -> Callable[[Any], Awaitable[Any]]:
    async def run(ctx: Any) -> Any:
        return await mw(ctx, nxt)

    return run
