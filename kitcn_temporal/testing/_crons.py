"""An env's crons: their schedules run only when virtual time passes their times.

Temporal's schedules fire on the wall clock and never on skipped time, so a TestEnv pauses
its crons' schedules and, for each span it advances, *backfills* them (Temporal starts the
runs of that span at once, each carrying its time as ``TemporalScheduledStartTime``, which
the job workflow takes as its due time). The runs of the span are known ahead, from the
schedule's matching times, and so are their workflow ids.

Layer: testing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from ..crons._backfill import MAX_RUNS, matching_times
from ._errors import TestEnvError

#: Temporal lists at most this many matching times.
_LISTED = 1000
#: A schedule names each run ``<action id>-<its time>``.
_RUN_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: A backfill's start is inclusive, its matching times' exclusive: both start just after ``start``.
_AFTER = timedelta(milliseconds=1)
_POLL = 0.1


@dataclass
class Backfill:
    """The runs one backfill asked a schedule for."""

    handle: ScheduleHandle
    run_ids: list[str]
    #: The schedule's action count before the backfill.
    actions_before: int


async def delete(client: Client, schedule_ids: Sequence[str]) -> None:
    """Delete the env's cron schedules (its namespace is left behind on a shared server)."""
    for schedule_id in schedule_ids:
        with contextlib.suppress(RPCError):  # gone already (a runtime cron unregistered)
            await client.get_schedule_handle(schedule_id).delete()


async def start_backfill(client: Client, name: str, schedule_id: str, start: datetime, end: datetime) -> Backfill:
    """Ask the schedule for its runs due in (``start``, ``end``]; nothing when it has none
    (or when it is gone: a runtime cron unregistered)."""
    handle = client.get_schedule_handle(schedule_id)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return Backfill(handle, [], 0)
    times = await matching_times(client, schedule_id, start + _AFTER, end)
    if not times:
        return Backfill(handle, [], desc.info.num_actions)
    if len(times) > MAX_RUNS:
        count = f"{len(times)}" if len(times) < _LISTED else f"{_LISTED} or more"
        raise TestEnvError(
            f"cron {name!r} has {count} runs between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC, "
            f"more than the {MAX_RUNS} one advance() starts (Temporal starts about 10 a second): "
            "advance by a shorter span, or run it with trigger_cron()"
        )
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    ids = [f"{action.id}-{t:{_RUN_TIME_FORMAT}}" for t in times]
    backfill = Backfill(handle, ids, desc.info.num_actions)
    await handle.backfill(
        ScheduleBackfill(start_at=start + _AFTER, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    )
    return backfill


async def wait_started(backfills: Sequence[Backfill]) -> None:
    """Return once every run the backfills asked for has started (Temporal throttles them)."""
    for backfill in backfills:
        while backfill.run_ids:
            desc = await backfill.handle.describe()
            if desc.info.num_actions >= backfill.actions_before + len(backfill.run_ids):
                break
            await asyncio.sleep(_POLL)


async def trigger(handle: ScheduleHandle) -> str:
    """Start a run of the schedule now; its workflow (job) id."""
    seen = set(_run_ids(await handle.describe()))
    await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    while True:
        new = [run_id for run_id in _run_ids(await handle.describe()) if run_id not in seen]
        if new:
            return new[-1]
        await asyncio.sleep(_POLL)


def _run_ids(desc: ScheduleDescription) -> list[str]:
    """The workflow ids of the schedule's recent runs, oldest first."""
    return [
        recent.action.workflow_id
        for recent in desc.info.recent_actions
        if isinstance(recent.action, ScheduleActionExecutionStartWorkflow)
    ]
