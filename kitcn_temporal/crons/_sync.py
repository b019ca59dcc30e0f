"""The Temporal side of crons: one schedule per cron, kept in step with the declarations.

A sync writes a schedule (``_schedules``) only where its declaration's hash differs, and
touches only the declared crons of its own app (``_owner``): a declared name another
app's schedule holds, or a runtime cron of the app, is an error raised before anything is
written. ``crons list`` shows the declared crons, then the app's schedules no declaration
names: stale declared ones (the next sync deletes them) and runtime crons.

Layer: crons.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, Schedule, ScheduleActionExecutionStartWorkflow, ScheduleDescription

from .._app import App
from .._errors import CRPCError
from ..jobs._status import ScheduledFunction, SystemTable
from ._owner import ORIGIN_DECLARED, ORIGIN_RUNTIME, Owner, holder_of
from ._schedules import (
    CronPlan,
    declared_hash,
    delete_schedule,
    describe_schedule,
    described_cron,
    owned_schedule_ids,
    put_schedule,
    require_own,
)
from ._spec import DEFAULT_OVERLAP, SCHEDULE_ID_PREFIX, CronJob


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
    #: What happens when a run is due while the previous one is still going: Temporal's
    #: overlap policy (``"skip"``, ``"buffer_one"``, ``"buffer_all"``, ``"cancel_other"``,
    #: ``"terminate_other"``, ``"allow_all"``).
    overlap: str = DEFAULT_OVERLAP
    #: Each run starts up to this much later than its time, at random.
    jitter: timedelta = timedelta(0)
    #: ``"declared"`` (in code, kept by ``crons sync``) or ``"runtime"`` (``ctx.crons.register``).
    origin: str = "declared"
    #: Declared in code; ``False`` for a runtime cron and for a schedule the next sync deletes.
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
    cron: CronPlan

    @property
    def function(self) -> str:
        return self.cron.function

    @property
    def owner(self) -> Owner:
        return self.cron.owner

    @property
    def schedule(self) -> Schedule:
        return self.cron.schedule()

    @property
    def digest(self) -> str:
        return self.cron.digest()


class AppClient(Protocol):
    """A Temporal client bound to an app and a task queue: a ``KitcnClient`` (which sits
    above this folder, so it is named by what it has)."""

    client: Client
    app: App
    task_queue: str


def resolve_target(client: AppClient | Client, app: App | None, task_queue: str | None) -> tuple[Client, App, str]:
    """The Temporal client, app and task queue a sync or list works with."""
    if not isinstance(client, Client):
        if not (isinstance(getattr(client, "client", None), Client) and isinstance(getattr(client, "app", None), App)):
            raise TypeError(f"crons take a KitcnClient or a temporalio Client, not {client!r}")
        if app is None:
            return client.client, client.app, task_queue or client.task_queue
        return client.client, app, task_queue or app.task_queue
    if app is None:
        # The app of the client's KitcnPlugin (the plugin's only one that carries an App).
        app = next((a for p in client.config()["plugins"] if isinstance(a := getattr(p, "app", None), App)), None)
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
    return _Plan(job, CronPlan.of(job, function, app.exec_options(job.procedure), owner))


async def sync_crons(jobs: Sequence[CronJob], client: Client, app: App, task_queue: str) -> SyncReport:
    """Create, update and delete this app's declared ``kitcn-cron:`` schedules until they match ``jobs``.

    Every target resolves, and no declared name is another app's (or a runtime cron's), before
    the first write.
    """
    owner = Owner(app.name, task_queue)
    plans = [_plan(job, app, owner) for job in jobs]
    found = await asyncio.gather(*(describe_schedule(client, p.job.schedule_id) for p in plans))
    for plan, desc in zip(plans, found, strict=True):
        if desc is not None:
            await require_own(client, plan.job.name, owner, desc)
    report = SyncReport()
    for plan, desc in zip(plans, found, strict=True):
        outcome = await put_schedule(client, plan.cron, desc)
        getattr(report, outcome).append(plan.job.name)
    ((stale,),) = [await owned_schedule_ids(client, [owner], {p.job.schedule_id for p in plans})]
    for schedule_id in stale:
        if await delete_schedule(client, schedule_id):  # else gone already: the list lags deletions
            report.deleted.append(schedule_id[len(SCHEDULE_ID_PREFIX) :])
    return report


async def cron_statuses(jobs: Sequence[CronJob], client: Client, app: App, task_queue: str) -> list[CronStatus]:
    """One row per declared cron, then one per stale ``kitcn-cron:`` schedule of this app, then
    one per runtime cron of this app."""
    owner = Owner(app.name, task_queue)
    plans = [_plan(job, app, owner) for job in jobs]
    declared = await asyncio.gather(*(_declared_status(client, plan) for plan in plans))
    stale_ids, runtime_ids = await owned_schedule_ids(
        client, [owner, Owner(app.name, task_queue, ORIGIN_RUNTIME)], {p.job.schedule_id for p in plans}
    )
    listed = await asyncio.gather(
        *(_listed_status(client, schedule_id, ORIGIN_DECLARED) for schedule_id in stale_ids),
        *(_listed_status(client, schedule_id, ORIGIN_RUNTIME) for schedule_id in runtime_ids),
    )
    return [*declared, *(row for row in listed if row is not None)]


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
        overlap=job.overlap,
        jitter=job.jitter,
        declared=True,
        synced=False,
        up_to_date=False,
        next_runs=job.next_runs(3),
    )
    desc = await describe_schedule(client, job.schedule_id)
    if desc is None:
        return row
    holder = await holder_of(client, desc)
    if not holder.belongs_to(plan.owner):
        return row.model_copy(update={"held_by": holder.label()})
    return row.model_copy(
        update={
            "synced": True,
            "up_to_date": await declared_hash(client, desc) == plan.digest,
            **await _live_fields(client, desc),
        }
    )


async def _listed_status(client: Client, schedule_id: str, origin: str) -> CronStatus | None:
    """The row of a schedule that no declaration names: a stale declared cron, or a runtime cron."""
    desc = await describe_schedule(client, schedule_id)
    if desc is None:
        return None
    cron = await described_cron(client, desc)
    return CronStatus(
        name=cron.name,
        schedule_id=schedule_id,
        function=cron.function,
        kind=cron.kind,
        spec=cron.spec,
        timezone=cron.timezone,
        args=cron.args,
        overlap=cron.overlap,
        jitter=cron.jitter,
        origin=origin,
        declared=False,
        synced=True,
        # A runtime cron is as registered; a stale one is to be deleted.
        up_to_date=origin == ORIGIN_RUNTIME,
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
