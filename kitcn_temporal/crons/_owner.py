"""Who a ``kitcn-cron:`` schedule belongs to, in a namespace several apps share.

A cron's schedule records its owner twice, as ``{"app": <App.name>, "origin": ...}`` under
``kitcnCron``: in the schedule's own memo, which Temporal's schedule list returns without a
describe (but which no update can change), and in the action's ``kitcnCron`` memo (which an
update rewrites, and each run's job carries). ``origin`` tells declared crons (``"declared"``,
kept by ``crons.sync``) from runtime crons (``"runtime"``, kept by ``ctx.crons``): each side
writes only its own. A schedule from before owners were recorded is a declared cron of the app
whose task queue its action uses.

Layer: crons: knows schedules and their memos, not procedures or apps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleDescription, ScheduleListDescription

from .._wire import JOB_WORKFLOW

#: Memo field of a cron's schedule and of its action (so of each run): who owns it, and, in
#: the action's, what was declared.
MEMO_CRON = "kitcnCron"
#: The ``origin`` of a cron declared in code and kept by ``crons.sync``.
ORIGIN_DECLARED = "declared"
#: The ``origin`` of a cron registered at runtime (``ctx.crons.register``).
ORIGIN_RUNTIME = "runtime"


@dataclass(frozen=True)
class Owner:
    """Who writes a cron's schedule: an app's sync (declared) or its ``ctx.crons`` (runtime).

    ``task_queue`` is where the crons' runs execute.
    """

    app: str
    task_queue: str
    origin: str = ORIGIN_DECLARED

    def record(self) -> dict[str, str]:
        """What a schedule of this owner records as its owner."""
        return {"app": self.app, "origin": self.origin}


@dataclass(frozen=True)
class Holder:
    """Who holds a schedule, as the schedule says."""

    #: Created by kitcn-temporal (a job workflow action with a ``kitcnCron`` memo).
    kitcn: bool
    #: The owning app; ``None`` for a schedule from before owners were recorded.
    app: str | None = None
    #: The action's task queue: the owner of a schedule that records no app.
    task_queue: str | None = None
    origin: str = ORIGIN_DECLARED

    def belongs_to(self, owner: Owner) -> bool:
        """Whether ``owner`` (an app's sync, or its runtime crons) may update or delete this schedule."""
        if not self.kitcn or self.origin != owner.origin:
            return False
        return self.app == owner.app if self.app is not None else self.task_queue == owner.task_queue

    def label(self) -> str:
        """``app 'billing'``, as an error message names the holder."""
        if not self.kitcn:
            return "a schedule kitcn-temporal did not create"
        who = f"app {self.app!r}" if self.app is not None else f"the app on task queue {self.task_queue!r}"
        return who if self.origin == ORIGIN_DECLARED else f"{who} (a {self.origin} cron)"


class CronConflictError(ValueError):
    """A cron's name is held by a schedule its owner may not touch (another app's, or a cron
    of the other origin: declared in code, or registered at runtime)."""


def conflict(name: str, schedule_id: str, holder: Holder, owner: Owner) -> CronConflictError:
    """The error of a cron whose schedule belongs to ``holder``, not to ``owner``."""
    if owner.origin == ORIGIN_DECLARED:
        fix = (
            "unregister the runtime cron or rename this one"
            if holder.kitcn and holder.origin == ORIGIN_RUNTIME and holder.app == owner.app
            else "rename the cron in one of the apps (or, if that app is gone, delete the schedule and sync again)"
        )
        return CronConflictError(
            f"cron {name!r} of app {owner.app!r} cannot be synced: its schedule {schedule_id!r} belongs to "
            f"{holder.label()}; {fix}: nothing was written"
        )
    declared = " (a declared cron: crons sync keeps it)" if holder.kitcn and holder.origin == ORIGIN_DECLARED else ""
    return CronConflictError(
        f"cron {name!r} of app {owner.app!r} cannot be changed at runtime: its schedule {schedule_id!r} "
        f"belongs to {holder.label()}{declared}; choose another name"
    )


def holder_in(record: Any) -> Holder | None:
    """The holder a ``kitcnCron`` memo value names, or ``None`` when it names no app."""
    if isinstance(record, dict) and isinstance(record.get("app"), str):
        return Holder(True, record["app"], origin=str(record.get("origin", ORIGIN_DECLARED)))
    return None


async def listed_holder(entry: ScheduleListDescription) -> Holder | None:
    """The holder a schedule list entry names (``None``: describe the schedule to know)."""
    return holder_in(await entry.memo_value(MEMO_CRON, None))


async def holder_of(client: Client, desc: ScheduleDescription) -> Holder:
    """Who holds the described schedule: its memo, its action's memo, or its task queue."""
    declared = await action_memo_field(client, desc, MEMO_CRON)
    found = holder_in((await desc.memo()).get(MEMO_CRON)) or holder_in(declared)
    if found is not None:
        return found
    action = desc.schedule.action
    if (
        isinstance(action, ScheduleActionStartWorkflow)
        and action.workflow == JOB_WORKFLOW
        and isinstance(declared, dict)
    ):
        return Holder(True, None, action.task_queue)  # from before owners were recorded
    return Holder(False)


async def action_memo_field(client: Client, desc: ScheduleDescription, key: str) -> Any:
    """A field of the schedule action's memo, which ``describe()`` returns still encoded."""
    action = desc.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return None
    value = action.memo.get(key)
    if isinstance(value, Payload):
        return (await client.data_converter.decode([value]))[0]
    return value
