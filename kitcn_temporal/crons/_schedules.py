"""A cron's Temporal schedule: its shape, and writing it, for declared and runtime crons alike.

:class:`CronPlan` is a cron resolved against its app (function name, run options, owner): the
schedule it needs and that schedule's hash, in JSON-ready fields, so a mutation's record can
keep a buffered registration (:class:`CronChange`) and apply it after a retry. Temporal rewrites
a schedule's cron strings into calendars, so a described spec never equals the declared one:
each schedule's action memo carries the hash, and a write changes only a schedule whose hash
differs. Only the owner (``_owner``) of a schedule writes it.

Layer: crons: knows schedules and ids, not procedures or apps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic_core
from pydantic import TypeAdapter
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from .._wire import (
    JOB_WORKFLOW,
    MEMO_ARGS,
    MEMO_ARGS_LIMIT,
    MEMO_SPEC,
    SA_FUNCTION,
    SA_STATE,
    CronChange,
    ExecOptions,
    JobSpec,
    without_defaults,
)
from ._owner import (
    MEMO_CRON,
    ORIGIN_DECLARED,
    ORIGIN_RUNTIME,
    CronConflictError,
    Holder,
    Owner,
    action_memo_field,
    conflict,
    holder_of,
    listed_holder,
)
from ._spec import (
    DEFAULT_OVERLAP,
    OVERLAP_POLICIES,
    SCHEDULE_ID_PREFIX,
    CronJob,
    Kind,
    preview_runs,
    spec_dict,
    temporal_cron_strings,
)

logger = logging.getLogger("kitcn_temporal")

#: Runs missed while Temporal was unavailable are dropped after this long (Temporal's minimum
#: is 10 s): a cron does not catch up, it waits for its next time.
CATCHUP_WINDOW = timedelta(minutes=1)
#: Part of every declaration hash: bump it when the schedules this module builds change shape
#: (2: the action memo names the owning app, so an older schedule is rewritten once, adopted).
_SCHEDULE_FORMAT = 3

SyncOutcome = Literal["created", "updated", "unchanged"]

#: Temporal's overlap policy of each name a cron may give (``SKIP`` for ``"skip"``, ...).
OVERLAP = {name: ScheduleOverlapPolicy[name.upper()] for name in OVERLAP_POLICIES}


@dataclass(frozen=True)
class CronPlan:
    """A cron resolved against its app: everything its schedule is made of, JSON-ready."""

    name: str
    kind: Kind
    #: The timing as declared: ``"every 2h"`` or ``"0 9 * * *"``.
    spec: str
    timezone: str
    function: str
    options: ExecOptions
    args: dict[str, Any]
    #: The period of an interval cron, in ms (``None`` for an expression).
    every_ms: int | None
    task_queue: str
    app: str
    origin: str
    #: Temporal's overlap policy, by its name in :data:`OVERLAP_POLICIES`.
    overlap: str = DEFAULT_OVERLAP
    #: Each run starts up to this many ms later than its time, at random.
    jitter_ms: int = 0

    @classmethod
    def of(cls, job: CronJob, function: str, options: ExecOptions, owner: Owner) -> CronPlan:
        """The plan of ``job``, whose procedure the app names ``function`` and runs with ``options``."""
        every_ms = None if job.every is None else job.every // timedelta(milliseconds=1)
        return cls(
            job.name,
            job.kind,
            job.spec,
            job.timezone,
            function,
            options,
            job.args,
            every_ms,
            owner.task_queue,
            owner.app,
            owner.origin,
            job.overlap,
            job.jitter // timedelta(milliseconds=1),
        )

    @property
    def schedule_id(self) -> str:
        return SCHEDULE_ID_PREFIX + self.name

    @property
    def owner(self) -> Owner:
        return Owner(self.app, self.task_queue, self.origin)

    @property
    def every(self) -> timedelta | None:
        return None if self.every_ms is None else timedelta(milliseconds=self.every_ms)

    def spec_dict(self) -> dict[str, Any]:
        """The timing (and overlap policy, jitter) in ``ctx.crons.register``'s shape."""
        return spec_dict(self.kind, self.spec, self.timezone, self.every_ms, self.overlap, self.jitter_ms)

    def next_runs(self, count: int = 3) -> list[datetime]:
        """A local preview of the next runs (for a cron not in Temporal yet)."""
        return preview_runs(self.spec, self.timezone, self.every, count)

    def digest(self) -> str:
        """The hash of what was declared, kept in the action memo to detect a change."""
        every = self.every
        timing: Any = every // timedelta(microseconds=1) if every else temporal_cron_strings(self.spec)
        declaration = {
            "format": _SCHEDULE_FORMAT,
            "timing": timing,
            "timezone": self.timezone,
            "function": self.function,
            "args": self.args,
            "options": _hashed_options(self.options),
            "taskQueue": self.task_queue,
            "app": self.app,
            "catchupWindowMs": CATCHUP_WINDOW // timedelta(milliseconds=1),
        }
        if self.origin != ORIGIN_DECLARED:  # declared crons keep the hashes of earlier versions
            declaration["origin"] = self.origin
        # Only when set: a cron declared before they existed keeps its hash (a sync rewrites nothing).
        if self.overlap != DEFAULT_OVERLAP:
            declaration["overlap"] = self.overlap
        if self.jitter_ms:
            declaration["jitterMs"] = self.jitter_ms
        return hashlib.sha256(json.dumps(declaration, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def schedule(self) -> Schedule:
        """The Temporal schedule: each run a ``kitcn.ScheduledFunction`` job, with the cron's
        overlap policy (overlaps skipped by default) and jitter."""
        every = self.every
        jitter = timedelta(milliseconds=self.jitter_ms) if self.jitter_ms else None
        if every is not None:
            spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)], jitter=jitter)
        else:
            spec = ScheduleSpec(
                cron_expressions=temporal_cron_strings(self.spec), time_zone_name=self.timezone, jitter=jitter
            )
        zone = "" if self.timezone == "UTC" else f" {self.timezone}"
        memo: dict[str, Any] = {
            # No due time: each run is due when the schedule means it to start.
            MEMO_SPEC: without_defaults(JobSpec(self.function, self.options, None)),
            MEMO_CRON: {
                **self.owner.record(),
                "name": self.name,
                "kind": self.kind,
                "spec": self.spec,
                "timezone": self.timezone,
                "function": self.function,
                "hash": self.digest(),
            },
        }
        if len(pydantic_core.to_json(self.args)) <= MEMO_ARGS_LIMIT:
            memo[MEMO_ARGS] = self.args
        action = ScheduleActionStartWorkflow(
            JOB_WORKFLOW,
            # The arguments alone: what the Temporal UI shows as each run's Input.
            self.args,
            # Each run's id is this, then its time: the function first, as for every job id.
            id=f"{self.function}:cron:{self.name}",
            task_queue=self.task_queue,
            memo=memo,
            typed_search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SA_FUNCTION, self.function), SearchAttributePair(SA_STATE, "pending")]
            ),
            static_summary=f"{self.function}, cron {self.name!r}: {self.spec}{zone}",
        )
        # SKIP by default: no run starts while the previous one is still going.
        policy = SchedulePolicy(overlap=OVERLAP[self.overlap], catchup_window=CATCHUP_WINDOW)
        return Schedule(action=action, spec=spec, policy=policy)


def cron_change(name: str, owner: Owner, plan: CronPlan | None) -> CronChange:
    """A mutation's buffered registration (``plan``) or unregistration (``None``) of cron ``name``."""
    plan_json = None if plan is None else pydantic_core.to_jsonable_python(plan)
    return CronChange("register" if plan else "unregister", name, owner.app, owner.task_queue, plan_json)


def change_plan(change: CronChange) -> CronPlan | None:
    """The plan a buffered change registers (``None``: it unregisters)."""
    return None if change.plan is None else _PLAN.validate_python(change.plan)


def change_owner(change: CronChange) -> Owner:
    """Who buffered ``change``: a runtime cron's owner."""
    return Owner(change.app, change.task_queue, ORIGIN_RUNTIME)


async def describe_schedule(client: Client, schedule_id: str) -> ScheduleDescription | None:
    """The schedule's description, or ``None`` if there is none."""
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def declared_hash(client: Client, desc: ScheduleDescription) -> str | None:
    """The hash of the declaration a schedule was last written from."""
    declared = await action_memo_field(client, desc, MEMO_CRON)
    return declared.get("hash") if isinstance(declared, dict) else None


async def require_own(client: Client, name: str, owner: Owner, desc: ScheduleDescription) -> None:
    """:class:`CronConflictError` unless ``owner`` may write the described schedule."""
    holder = await holder_of(client, desc)
    if not holder.belongs_to(owner):
        raise conflict(name, desc.id, holder, owner)


async def put_schedule(client: Client, plan: CronPlan, desc: ScheduleDescription | None) -> SyncOutcome:
    """Create ``plan``'s schedule, or update it (keeping its paused state and note) if it changed.

    ``desc``: the schedule as described just before (``None``: it did not exist), its owner
    checked. One created meanwhile is described again and its owner checked.
    """
    handle = client.get_schedule_handle(plan.schedule_id)
    digest = plan.digest()
    if desc is None:
        try:
            await client.create_schedule(handle.id, plan.schedule(), memo={MEMO_CRON: plan.owner.record()})
            return "created"
        except ScheduleAlreadyRunningError:  # created meanwhile by a concurrent writer
            desc = await handle.describe()
            await require_own(client, plan.name, plan.owner, desc)
    if await declared_hash(client, desc) == digest:
        return "unchanged"
    changed = False

    async def updater(update: ScheduleUpdateInput) -> ScheduleUpdate | None:
        nonlocal changed
        current = update.description
        changed = await declared_hash(client, current) != digest
        if not changed:
            return None
        # An operator's pause and note (and any action limit) outlive a change of declaration.
        return ScheduleUpdate(schedule=dataclasses.replace(plan.schedule(), state=current.schedule.state))

    await handle.update(updater)
    return "updated" if changed else "unchanged"


async def delete_schedule(client: Client, schedule_id: str) -> bool:
    """Delete a schedule; ``False`` if it was gone already."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def apply_change(client: Client, change: CronChange) -> None:
    """Apply a committed mutation's cron change (idempotent: a retried attempt applies it again).

    Its name was checked free at the call; one taken since by a cron of another owner is left
    to that owner, with a warning: the mutation has committed.
    """
    desc = await describe_schedule(client, SCHEDULE_ID_PREFIX + change.name)
    plan = change_plan(change)
    try:
        if desc is not None:
            await require_own(client, change.name, change_owner(change), desc)
        if plan is not None:
            await put_schedule(client, plan, desc)
        elif desc is not None:
            await delete_schedule(client, desc.id)
    except CronConflictError as err:
        logger.warning("not applying the %s of cron %r: %s", change.cron, change.name, err)


@dataclass(frozen=True)
class DescribedCron:
    """What a cron's schedule says of it: its declaration (from the action memo) and its state."""

    name: str
    #: ``None`` for a schedule whose memo does not say (not written by kitcn-temporal).
    function: str | None
    kind: str
    spec: str
    timezone: str
    every_ms: int | None
    args: dict[str, Any]
    paused: bool
    note: str | None
    next_runs: list[datetime]
    #: Its overlap policy's name (:data:`OVERLAP_POLICIES`), as the schedule has it.
    overlap: str = DEFAULT_OVERLAP
    jitter: timedelta = timedelta(0)

    def spec_dict(self) -> dict[str, Any]:
        """The timing (and overlap policy, jitter) in ``ctx.crons.register``'s shape."""
        jitter_ms = self.jitter // timedelta(milliseconds=1)
        return spec_dict(self.kind, self.spec, self.timezone, self.every_ms, self.overlap, jitter_ms)


async def described_cron(client: Client, desc: ScheduleDescription, *, runs: int = 3) -> DescribedCron:
    """The cron a schedule runs, as its description (and its action's memo) tell it."""
    declared = await action_memo_field(client, desc, MEMO_CRON)
    info = declared if isinstance(declared, dict) else {}
    action = desc.schedule.action
    args: Any = {}
    if isinstance(action, ScheduleActionStartWorkflow) and action.args:
        (args,) = await client.data_converter.decode(list(action.args)[:1])
    intervals = desc.schedule.spec.intervals
    return DescribedCron(
        name=desc.id.removeprefix(SCHEDULE_ID_PREFIX),
        function=info.get("function"),
        kind=str(info.get("kind", "unknown")),
        spec=str(info.get("spec", "")),
        timezone=str(info.get("timezone", "UTC")),
        every_ms=intervals[0].every // timedelta(milliseconds=1) if intervals else None,
        args=args if isinstance(args, dict) else {},
        paused=desc.schedule.state.paused,
        note=desc.schedule.state.note,
        next_runs=list(desc.info.next_action_times[:runs]),
        overlap=overlap_name(desc),
        jitter=desc.schedule.spec.jitter or timedelta(0),
    )


def overlap_name(desc: ScheduleDescription) -> str:
    """The described schedule's overlap policy, by its name in :data:`OVERLAP_POLICIES`."""
    return desc.schedule.policy.overlap.name.lower()


async def owned_schedule_ids(client: Client, owners: Sequence[Owner], skip: Set[str] = frozenset()) -> list[list[str]]:
    """The ``kitcn-cron:`` schedules of each of ``owners`` but those in ``skip``, from Temporal's
    schedule list (which lags writes by about a second)."""
    found: list[list[str]] = [[] for _ in owners]
    async for entry in await client.list_schedules():
        if not entry.id.startswith(SCHEDULE_ID_PREFIX) or entry.id in skip:
            continue
        holder: Holder | None = await listed_holder(entry)
        if holder is None:  # a schedule that records no owner in its memo: ask its action
            desc = await describe_schedule(client, entry.id)
            holder = None if desc is None else await holder_of(client, desc)
        for ids, owner in zip(found, owners, strict=True):
            if holder is not None and holder.belongs_to(owner):
                ids.append(entry.id)
    return found


#: Reads a plan back from a buffered change's JSON (a mutation's record keeps it as JSON).
_PLAN: TypeAdapter[CronPlan] = TypeAdapter(CronPlan)


#: Run options added since hashes were first kept, with their defaults: left out of the hash
#: at their default, so that a sync after an upgrade rewrites no schedule.
_LATER_OPTIONS = {"gated": False}


def _hashed_options(options: ExecOptions) -> dict[str, Any]:
    fields = dataclasses.asdict(options)
    return {k: v for k, v in fields.items() if k not in _LATER_OPTIONS or v != _LATER_OPTIONS[k]}
