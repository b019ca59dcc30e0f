"""One procedure execution: its unit, its context, its database transaction, its schedules.

Shared by the activities (jobs and client calls) and by in-process calls made
through a caller from inside another procedure.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._app import App
from ._context import ActionCtx, BaseCtx, JobInfo, MutationCtx, QueryCtx
from ._errors import CRPCError
from ._procedures import Procedure
from ._runtime import decode_output, encode_output, invoke
from ._scheduler import Scheduler, Unit
from ._status import SystemTable
from ._wire import Kind

_CTX_TYPES: dict[Kind, type[BaseCtx]] = {"query": QueryCtx, "mutation": MutationCtx, "action": ActionCtx}


def make_ctx(
    kind: Kind, app: App, unit: Unit, *, auth: Any, job: JobInfo | None, proc: Procedure
) -> BaseCtx:
    """The context a ``kind`` procedure receives when it runs in ``unit``."""
    return _CTX_TYPES[kind](
        app=app,
        unit=unit,
        scheduler=Scheduler(app, unit, readonly=kind == "query"),
        system=SystemTable(unit.jobs.client),
        auth=auth,
        job=job,
        meta=proc.meta,
    )


def unit_mode_for(kind: Kind) -> Any:
    return {"query": "none", "mutation": "buffered", "action": "immediate"}[kind]


async def run_procedure(
    app: App, proc: Procedure, name: str, unit: Unit, *, auth: Any, job: JobInfo | None, args: Any
) -> Any:
    """Run ``proc`` as the top of ``unit`` and return its output as JSON-ready data.

    A mutation's schedules and cancels are applied once it has succeeded (and, with a
    database, once its transaction has committed together with the record of them).
    """
    ctx = make_ctx(proc.kind, app, unit, auth=auth, job=job, proc=proc)
    if proc.kind == "mutation" and app.store is not None:
        output: Any = await app.store.run_mutation(unit, name, lambda: _encoded(proc, name, ctx, args))
    elif proc.kind == "query" and app.store is not None:
        async with app.store.read_session(unit):
            output = await _encoded(proc, name, ctx, args)
    else:
        output = await _encoded(proc, name, ctx, args)
    if proc.kind == "mutation":
        await unit.flush()
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
    child = Unit(unit_mode_for(proc.kind), str(uuid.uuid4()), unit.jobs, parent=unit)
    output = await run_procedure(app, proc, name, child, auth=parent.auth, job=parent.job, args=args)
    return decode_output(proc, output)


def _kind_of(ctx: BaseCtx) -> Kind:
    for kind, ctx_type in _CTX_TYPES.items():
        if isinstance(ctx, ctx_type):
            return kind
    raise TypeError(f"not a procedure context: {ctx!r}")
