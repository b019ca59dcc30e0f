"""Runtime crons (Convex's crons component): ``ctx.crons`` and ``KitcnClient.crons``.

``register(name, spec, function, args)`` / ``unregister(name)`` / ``get(name)`` / ``list()``
(and ``backfill(name, start, end)``, for the app's declared crons too):
crons that code creates while the app runs ("a digest every Monday 9:00 for this user, in
their time zone"). Each is a Temporal schedule ``kitcn-cron:<name>`` of the same shape as a
declared cron's, whose memo records ``{"app": ..., "origin": "runtime"}``: ``crons sync`` never
touches it, and it never takes a declared cron's name. From a mutation a change is buffered
in its unit and applied once the mutation commits (recorded with it by the SQL store); from
an action or a client it is immediate; a query may only read.

Layer: crons: fills a :class:`~kitcn_temporal.jobs._unit.Unit`, as the
scheduler does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, ScheduleDescription

from .._errors import CRPCError
from .._wire import CronChange
from ..jobs._scheduler import check_limits
from ..jobs._unit import Unit
from ..procedures._procedures import Procedure
from ._backfill import backfill_cron
from ._owner import ORIGIN_RUNTIME, CronConflictError, Owner, holder_of
from ._schedules import (
    CronPlan,
    change_plan,
    cron_change,
    delete_schedule,
    describe_schedule,
    described_cron,
    owned_schedule_ids,
    put_schedule,
    require_own,
)
from ._spec import DEFAULT_OVERLAP, SCHEDULE_ID_PREFIX, check_name, runtime_cron

if TYPE_CHECKING:
    from .._app import App

#: Schedules described at once by ``list()``.
_DESCRIBE_CONCURRENCY = 16


class CronInfo(BaseModel):
    """One runtime cron, as ``ctx.crons.get(name)`` and ``ctx.crons.list()`` return it."""

    model_config = ConfigDict(frozen=True)

    #: The name it was registered under; its schedule is ``kitcn-cron:<name>``.
    name: str
    #: ``{"cron": "0 9 * * 1", "tz": "Europe/Paris"}`` or ``{"interval_ms": 3600000}``, with
    #: ``overlap`` and ``jitter_ms`` when not the defaults: what ``register`` takes.
    spec: dict[str, Any]
    #: The procedure each run calls.
    function: str
    #: Its arguments.
    args: dict[str, Any]
    #: Paused in Temporal (by an operator: registering again keeps it so).
    paused: bool = False
    #: Temporal's overlap policy: ``"skip"`` (the default), ``"buffer_one"``, ``"buffer_all"``,
    #: ``"cancel_other"``, ``"terminate_other"`` or ``"allow_all"``.
    overlap: str = DEFAULT_OVERLAP
    #: Each run starts up to this much later than its time, at random.
    jitter: timedelta = timedelta(0)
    #: The next three run times (UTC), from Temporal's description of the schedule (a local
    #: preview for a registration its mutation has not committed yet).
    next_runs: list[datetime]


class Crons:
    """The app's runtime crons: ``await ctx.crons.register("digest:u1", {"cron": "0 9 * * 1"}, ...)``.

    Errors are ``CRPCError``: ``BAD_REQUEST`` for a bad name, spec, target or arguments (the
    checks of declared crons), ``CONFLICT`` for a name a declared cron (or another app) holds,
    ``FORBIDDEN`` for a private target through a public-only client.
    """

    def __init__(self, app: App, unit: Unit, *, readonly: bool = False, public_only: bool = False) -> None:
        self._app = app
        self._unit = unit
        self._readonly = readonly or unit.mode == "none"
        self._public_only = public_only

    async def register(self, name: str, spec: dict[str, Any], function: Procedure | str, args: Any = None) -> None:
        """Run ``function`` with ``args`` on ``spec`` under ``name``; an existing name is updated
        (a paused one stays paused).

        :param spec: ``{"cron": "m h dom mon dow", "tz": "Europe/Paris"}`` (``tz`` optional,
            UTC by default) or ``{"interval_ms": n}`` (whole seconds, at least 1 000); either
            may add ``"overlap"`` (Temporal's overlap policy: ``"skip"``, the default,
            ``"buffer_one"``, ``"buffer_all"``, ``"cancel_other"``, ``"terminate_other"`` or
            ``"allow_all"``) and a jitter, ``"jitter_ms": n`` or ``"jitter": timedelta``.
        :param function: a mutation or an action of the app, or its name.
        :param args: its arguments (a model instance or a dict), validated now.
        """
        self._refuse_in_query("register")
        plan = self._plan(name, spec, function, args)
        size = len(pydantic_core.to_json(plan.args))
        check_limits(self._unit, f"cron {name!r}", size)
        desc = await self._own_schedule(name)
        if self._unit.mode == "buffered":
            self._unit.intents.append(self._change(name, plan))
        else:
            try:
                await put_schedule(self._client, plan, desc)
            except CronConflictError as err:  # created meanwhile by another owner
                raise CRPCError("CONFLICT", str(err)) from None
        self._unit.schedule_calls += 1
        self._unit.args_bytes += size

    async def unregister(self, name: str) -> bool:
        """Remove runtime cron ``name``; whether it existed (from a mutation: once it commits)."""
        self._refuse_in_query("unregister")
        _check_name(name)
        check_limits(self._unit, f"cron {name!r}", 0)
        buffered = self._buffered(name)
        desc = await self._own_schedule(name)
        existed = desc is not None if buffered is None else buffered.plan is not None
        if self._unit.mode == "buffered":
            if existed:
                self._unit.intents.append(self._change(name, None))
        elif desc is not None:
            await delete_schedule(self._client, desc.id)
        self._unit.schedule_calls += 1
        return existed

    async def get(self, name: str) -> CronInfo | None:
        """Runtime cron ``name`` of this app, or ``None``.

        From a mutation, its own uncommitted changes show: what it registered, not what it
        unregistered.
        """
        _check_name(name)
        desc = await describe_schedule(self._client, SCHEDULE_ID_PREFIX + name)
        if desc is not None and not (await holder_of(self._client, desc)).belongs_to(self._owner()):
            desc = None
        buffered = self._buffered(name)
        if buffered is not None:
            paused = desc is not None and desc.schedule.state.paused
            plan = change_plan(buffered)
            return None if plan is None else _planned(plan, paused)
        return None if desc is None else await _described(self._client, desc)

    async def list(self) -> list[CronInfo]:
        """Every runtime cron of this app, by name (with a mutation's own uncommitted changes).

        Read from Temporal's schedule list, which lags writes by about a second: a cron
        registered or unregistered a moment ago by someone else may not show yet.
        """
        ((ids,),) = [await owned_schedule_ids(self._client, [self._owner()])]
        limit = asyncio.Semaphore(_DESCRIBE_CONCURRENCY)

        async def describe(schedule_id: str) -> CronInfo | None:
            async with limit:
                desc = await describe_schedule(self._client, schedule_id)
                return None if desc is None else await _described(self._client, desc)

        rows = {row.name: row for row in await asyncio.gather(*map(describe, ids)) if row is not None}
        for change in {c.name: c for c in self._unit.intents if isinstance(c, CronChange)}.values():
            row = rows.pop(change.name, None)
            if (plan := change_plan(change)) is not None:
                rows[change.name] = _planned(plan, row is not None and row.paused)
        return [rows[name] for name in sorted(rows)]

    async def backfill(self, name: str, start: datetime, end: datetime) -> int:
        """Run cron ``name`` once, now, for each of its times in [``start``, ``end``) (Temporal's
        schedule backfill); returns how many runs that is.

        ``name`` is a cron of this app, declared (and synced) or registered at runtime. Each run
        is a job whose ``scheduled_time`` is its time; Temporal starts them over the next seconds
        (about 10 a second), side by side whatever the cron's overlap policy. It takes effect
        at once, so a query or mutation may not call it.

        :param start: a timezone-aware datetime, the first instant of the window.
        :param end: a timezone-aware datetime after ``start``, the first instant after it.
        :raises CRPCError: ``BAD_REQUEST`` for a naive or reversed window, or one of more than
            500 runs; ``NOT_FOUND`` for a cron this app does not have in Temporal.
        """
        if self._unit.mode != "immediate":
            raise CRPCError("BAD_REQUEST", "a backfill takes effect at once: call it from an action or a client")
        _check_name(name)
        declared = Owner(self._app.name, self._owner().task_queue)
        return await backfill_cron(self._client, name, [declared, self._owner()], start, end)

    @property
    def _client(self) -> Client:
        return self._unit.jobs.client

    def _owner(self) -> Owner:
        return Owner(self._app.name, self._unit.jobs.task_queue or self._app.task_queue, ORIGIN_RUNTIME)

    def _change(self, name: str, plan: CronPlan | None) -> CronChange:
        return cron_change(name, self._owner(), plan)

    def _buffered(self, name: str) -> CronChange | None:
        """A mutation's last uncommitted change of cron ``name``."""
        changes = [c for c in self._unit.intents if isinstance(c, CronChange) and c.name == name]
        return changes[-1] if changes else None

    def _plan(self, name: str, spec: Any, function: Any, args: Any) -> CronPlan:
        """The registration, every part checked as a declared cron's is (``BAD_REQUEST``)."""
        _check_name(name)
        proc, label = self._target(name, function)
        try:
            job = runtime_cron(name, spec, proc, label, args)
        except (ValueError, TypeError) as err:
            raise CRPCError("BAD_REQUEST", str(err)) from None
        return CronPlan.of(job, label, self._app.exec_options(proc), self._owner())

    def _target(self, name: str, function: Any) -> tuple[Procedure, str]:
        try:
            if isinstance(function, Procedure):
                proc, label = function, self._app.name_of(function)
            elif isinstance(function, str):
                proc, label = self._app.get(function), function
            else:
                raise CRPCError(
                    "BAD_REQUEST",
                    f"the target must be a mutation or an action (a Procedure or its name), not {function!r}",
                )
        except CRPCError as err:
            raise CRPCError("BAD_REQUEST", f"cron {name!r}: {err.message}") from None
        if self._public_only and proc.internal:
            raise CRPCError(
                "FORBIDDEN", f"cron {name!r}: {label} is a private procedure: this client may not schedule it"
            )
        return proc, label

    async def _own_schedule(self, name: str) -> ScheduleDescription | None:
        """The schedule of runtime cron ``name`` (``None``: none yet); ``CONFLICT`` if another owns it."""
        desc = await describe_schedule(self._client, SCHEDULE_ID_PREFIX + name)
        if desc is not None:
            try:
                await require_own(self._client, name, self._owner(), desc)
            except CronConflictError as err:
                raise CRPCError("CONFLICT", str(err)) from None
        return desc

    def _refuse_in_query(self, what: str) -> None:
        if self._readonly:
            raise CRPCError("BAD_REQUEST", f"a query cannot {what} crons: use a mutation or an action")


def _check_name(name: Any) -> None:
    try:
        check_name(name)
    except (ValueError, TypeError) as err:
        raise CRPCError("BAD_REQUEST", str(err)) from None


def _planned(plan: CronPlan, paused: bool) -> CronInfo:
    """The row of a registration not in Temporal yet: its next runs previewed locally."""
    return CronInfo(
        name=plan.name,
        spec=plan.spec_dict(),
        function=plan.function,
        args=plan.args,
        paused=paused,
        overlap=plan.overlap,
        jitter=timedelta(milliseconds=plan.jitter_ms),
        next_runs=plan.next_runs(3),
    )


async def _described(client: Client, desc: ScheduleDescription) -> CronInfo:
    cron = await described_cron(client, desc)
    return CronInfo(
        name=cron.name,
        spec=cron.spec_dict(),
        function=cron.function or "?",
        args=cron.args,
        paused=cron.paused,
        overlap=cron.overlap,
        jitter=cron.jitter,
        next_runs=cron.next_runs,
    )
