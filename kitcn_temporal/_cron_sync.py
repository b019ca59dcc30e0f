"""The Temporal side of crons: one schedule per cron, kept in step with the declarations.

Temporal rewrites a schedule's cron strings into calendars, so a described spec never
equals the declared one: each schedule's action memo carries a hash of its declaration,
and a sync rewrites only the schedules whose hash differs. A sync touches only the schedules
of its own app (``_cron_owner``): a declared name another app's schedule holds is an error,
raised before anything is written.

Layer: crons, with ``_crons``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from ._app import App
from ._client import KitcnClient
from ._cron_owner import MEMO_CRON, Holder, Owner, action_memo_field, conflict, holder_of, listed_holder
from ._errors import CRPCError
from ._plugin import KitcnPlugin
from ._status import ScheduledFunction, SystemTable
from ._wire import JOB_WORKFLOW, MEMO_ARGS, MEMO_ARGS_LIMIT, MEMO_SPEC, SA_FUNCTION, SA_STATE, JobSpec, without_defaults

if TYPE_CHECKING:
    from ._crons import CronJob

#: Every cron's schedule id starts with this; a sync deletes its app's such schedules no
#: longer declared.
SCHEDULE_ID_PREFIX = "kitcn-cron:"
#: Runs missed while Temporal was unavailable are dropped after this long (Temporal's minimum
#: is 10 s): a cron does not catch up, it waits for its next time.
CATCHUP_WINDOW = timedelta(minutes=1)
#: Part of every declaration hash: bump it when the schedules this module builds change shape
#: (2: the action memo names the owning app, so an older schedule is rewritten once, adopted).
_SCHEDULE_FORMAT = 3

SyncOutcome = Literal["created", "updated", "unchanged"]


@dataclasses.dataclass
class SyncReport:
    """What :meth:`CronJobs.sync <kitcn_temporal.CronJobs.sync>` did, by cron name."""

    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many schedules the sync created, updated or deleted."""
        return len(self.created) + len(self.updated) + len(self.deleted)


class CronStatus(BaseModel):
    """One row of ``crons list``: a cron, its schedule in Temporal and its last run."""

    model_config = ConfigDict(frozen=True)

    #: The cron's name.
    name: str
    #: Its Temporal schedule: ``kitcn-cron:<name>``.
    schedule_id: str
    #: The procedure each run calls (``None`` for a stale schedule of unknown origin).
    function: str | None
    #: ``"interval"`` or ``"cron"`` (``"unknown"`` for a stale schedule of unknown origin).
    kind: str
    #: The timing as declared: ``"every 2h"`` or ``"0 9 * * *"``.
    spec: str
    #: The time zone a cron expression is read in.
    timezone: str
    args: dict[str, Any] = Field(default_factory=dict)
    #: Declared in code; ``False`` for a schedule the next sync deletes.
    declared: bool
    #: Its schedule exists in Temporal (and belongs to this app).
    synced: bool
    #: The schedule matches the declaration (``False`` until synced, or after a change).
    up_to_date: bool
    paused: bool = False
    #: The schedule's note (set with a pause or unpause, kept by syncs).
    note: str | None = None
    #: The next three run times (UTC): Temporal's once synced, a local preview before.
    next_runs: list[datetime]
    #: The job of the most recent run, or ``None`` before the first.
    last_run: ScheduledFunction | None = None
    #: Who holds the schedule of this name when it is not this app (a sync refuses the cron).
    held_by: str | None = None


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A declaration resolved against an app: the schedule it needs, and that schedule's hash."""

    job: CronJob
    function: str
    schedule: Schedule
    digest: str
    owner: Owner


def resolve_target(client: KitcnClient | Client, app: App | None, task_queue: str | None) -> tuple[Client, App, str]:
    """The Temporal client, app and task queue a sync or list works with."""
    if isinstance(client, KitcnClient):
        if app is None:
            return client.client, client.app, task_queue or client.task_queue
        return client.client, app, task_queue or app.task_queue
    if not isinstance(client, Client):
        raise TypeError(f"crons take a KitcnClient or a temporalio Client, not {client!r}")
    if app is None:
        app = next((p.app for p in client.config()["plugins"] if isinstance(p, KitcnPlugin)), None)
    if app is None:
        raise TypeError(
            "this Temporal client was not connected with KitcnPlugin(app): pass the app, "
            "crons.sync(client, app), or a KitcnClient"
        )
    return client, app, task_queue or app.task_queue


def _plan(job: CronJob, app: App, owner: Owner) -> _Plan:
    try:
        function = app.name_of(job.procedure)
    except CRPCError as err:
        raise ValueError(f"cron {job.name!r}: {err.message}") from None
    options = app.exec_options(job.procedure)
    timing: Any = job.every // timedelta(microseconds=1) if job.every else job.temporal_cron_strings()
    declaration = {
        "format": _SCHEDULE_FORMAT,
        "timing": timing,
        "timezone": job.timezone,
        "function": function,
        "args": job.args,
        "options": dataclasses.asdict(options),
        "taskQueue": owner.task_queue,
        "app": owner.app,
        "catchupWindowMs": CATCHUP_WINDOW // timedelta(milliseconds=1),
    }
    digest = hashlib.sha256(json.dumps(declaration, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if job.every is not None:
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=job.every)])
    else:
        spec = ScheduleSpec(cron_expressions=job.temporal_cron_strings(), time_zone_name=job.timezone)
    zone = "" if job.timezone == "UTC" else f" {job.timezone}"
    memo: dict[str, Any] = {
        # No due time: each run is due when the schedule means it to start.
        MEMO_SPEC: without_defaults(JobSpec(function, options, None)),
        MEMO_CRON: {
            **owner.record(),
            "name": job.name,
            "kind": job.kind,
            "spec": job.spec,
            "timezone": job.timezone,
            "function": function,
            "hash": digest,
        },
    }
    if len(pydantic_core.to_json(job.args)) <= MEMO_ARGS_LIMIT:
        memo[MEMO_ARGS] = job.args
    action = ScheduleActionStartWorkflow(
        JOB_WORKFLOW,
        # The arguments alone: what the Temporal UI shows as each run's Input.
        job.args,
        # Each run's id is this, then its time: the function first, as for every job id.
        id=f"{function}:cron:{job.name}",
        task_queue=owner.task_queue,
        memo=memo,
        typed_search_attributes=TypedSearchAttributes(
            [SearchAttributePair(SA_FUNCTION, function), SearchAttributePair(SA_STATE, "pending")]
        ),
        static_summary=f"{function}, cron {job.name!r}: {job.spec}{zone}",
    )
    # SKIP: no run starts while the previous one is still going.
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW)
    return _Plan(job, function, Schedule(action=action, spec=spec, policy=policy), digest, owner)


async def sync_crons(jobs: Sequence[CronJob], client: Client, app: App, task_queue: str) -> SyncReport:
    """Create, update and delete this app's ``kitcn-cron:`` schedules until they match ``jobs``.

    Every target resolves, and no declared name is another app's, before the first write.
    """
    owner = Owner(app.name, task_queue)
    plans = [_plan(job, app, owner) for job in jobs]
    found = await asyncio.gather(*(_describe(client.get_schedule_handle(p.job.schedule_id)) for p in plans))
    for plan, desc in zip(plans, found, strict=True):
        if desc is not None:
            await _require_own(client, plan, desc)
    report = SyncReport()
    for plan, desc in zip(plans, found, strict=True):
        outcome = await _apply(client, plan, desc)
        getattr(report, outcome).append(plan.job.name)
    for schedule_id in await _stale_ids(client, {p.job.schedule_id for p in plans}, owner):
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # gone already: the list lags deletions
                raise
            continue
        report.deleted.append(schedule_id[len(SCHEDULE_ID_PREFIX) :])
    return report


async def _require_own(client: Client, plan: _Plan, desc: ScheduleDescription) -> None:
    holder = await holder_of(client, desc)
    if not holder.belongs_to(plan.owner):
        raise conflict(plan.job.name, plan.job.schedule_id, holder, plan.owner)


async def _apply(client: Client, plan: _Plan, desc: ScheduleDescription | None) -> SyncOutcome:
    handle = client.get_schedule_handle(plan.job.schedule_id)
    if desc is None:
        try:
            await client.create_schedule(handle.id, plan.schedule, memo={MEMO_CRON: plan.owner.record()})
            return "created"
        except ScheduleAlreadyRunningError:  # created meanwhile by a concurrent sync
            desc = await handle.describe()
            await _require_own(client, plan, desc)
    if await _declared_hash(client, desc) == plan.digest:
        return "unchanged"
    changed = False

    async def updater(update: ScheduleUpdateInput) -> ScheduleUpdate | None:
        nonlocal changed
        current = update.description
        changed = await _declared_hash(client, current) != plan.digest
        if not changed:
            return None
        # An operator's pause and note (and any action limit) outlive a change of declaration.
        return ScheduleUpdate(schedule=dataclasses.replace(plan.schedule, state=current.schedule.state))

    await handle.update(updater)
    return "updated" if changed else "unchanged"


async def cron_statuses(jobs: Sequence[CronJob], client: Client, app: App, task_queue: str) -> list[CronStatus]:
    """One row per declared cron, then one per stale ``kitcn-cron:`` schedule of this app."""
    owner = Owner(app.name, task_queue)
    plans = [_plan(job, app, owner) for job in jobs]
    declared = await asyncio.gather(*(_declared_status(client, plan) for plan in plans))
    stale_ids = await _stale_ids(client, {p.job.schedule_id for p in plans}, owner)
    stale = await asyncio.gather(*(_stale_status(client, schedule_id) for schedule_id in stale_ids))
    return [*declared, *(row for row in stale if row is not None)]


async def _declared_status(client: Client, plan: _Plan) -> CronStatus:
    job = plan.job
    row = CronStatus(
        name=job.name,
        schedule_id=job.schedule_id,
        function=plan.function,
        kind=job.kind,
        spec=job.spec,
        timezone=job.timezone,
        args=job.args,
        declared=True,
        synced=False,
        up_to_date=False,
        next_runs=job.next_runs(3),
    )
    desc = await _describe(client.get_schedule_handle(job.schedule_id))
    if desc is None:
        return row
    holder = await holder_of(client, desc)
    if not holder.belongs_to(plan.owner):
        return row.model_copy(update={"held_by": holder.label()})
    return row.model_copy(
        update={
            "synced": True,
            "up_to_date": await _declared_hash(client, desc) == plan.digest,
            **await _live_fields(client, desc),
        }
    )


async def _stale_status(client: Client, schedule_id: str) -> CronStatus | None:
    desc = await _describe(client.get_schedule_handle(schedule_id))
    if desc is None:
        return None
    declared = await action_memo_field(client, desc, MEMO_CRON)
    info = declared if isinstance(declared, dict) else {}
    args = await action_memo_field(client, desc, MEMO_ARGS)
    return CronStatus(
        name=schedule_id[len(SCHEDULE_ID_PREFIX) :],
        schedule_id=schedule_id,
        function=info.get("function"),
        kind=str(info.get("kind", "unknown")),
        spec=str(info.get("spec", "")),
        timezone=str(info.get("timezone", "UTC")),
        args=args if isinstance(args, dict) else {},
        declared=False,
        synced=True,
        up_to_date=False,
        **await _live_fields(client, desc),
    )


async def _live_fields(client: Client, desc: ScheduleDescription) -> dict[str, Any]:
    """What Temporal says of a schedule: paused, note, next runs, last run."""
    last_run = None
    if desc.info.recent_actions:
        action = desc.info.recent_actions[-1].action
        if isinstance(action, ScheduleActionExecutionStartWorkflow):
            last_run = await SystemTable(client).get(action.workflow_id)
    return {
        "paused": desc.schedule.state.paused,
        "note": desc.schedule.state.note,
        "next_runs": list(desc.info.next_action_times[:3]),
        "last_run": last_run,
    }


async def _stale_ids(client: Client, declared: set[str], owner: Owner) -> list[str]:
    """``owner``'s ``kitcn-cron:`` schedules not in ``declared``, from Temporal's (lagging) list."""
    stale = []
    async for entry in await client.list_schedules():
        if not entry.id.startswith(SCHEDULE_ID_PREFIX) or entry.id in declared:
            continue
        holder: Holder | None = await listed_holder(entry)
        if holder is None:  # a schedule that records no owner in its memo: ask its action
            desc = await _describe(client.get_schedule_handle(entry.id))
            holder = None if desc is None else await holder_of(client, desc)
        if holder is not None and holder.belongs_to(owner):
            stale.append(entry.id)
    return stale


async def _describe(handle: ScheduleHandle) -> ScheduleDescription | None:
    try:
        return await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _declared_hash(client: Client, desc: ScheduleDescription) -> str | None:
    declared = await action_memo_field(client, desc, MEMO_CRON)
    return declared.get("hash") if isinstance(declared, dict) else None
