"""Backfill: run each time of a cron in a past (or any) window once, now.

Temporal's schedule backfill starts the runs of ``[start, end)`` at once, each carrying its
time as ``TemporalScheduledStartTime``, which the job workflow takes as the job's due time
(``scheduled_time``). The window's runs are counted beforehand from the schedule's matching
times; Temporal then starts them over the next seconds (about 10 a second).

Layer: crons.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import Client, ScheduleBackfill, ScheduleOverlapPolicy

from .._errors import CRPCError
from ._owner import Owner, holder_of
from ._schedules import describe_schedule
from ._spec import SCHEDULE_ID_PREFIX

#: The most runs one backfill starts: Temporal starts backfilled runs about 10 a second (500 take
#: about a minute), and lists at most 1000 matching times.
MAX_RUNS = 500
#: Temporal's matching times and backfills take whole instants; both edges of ``[start, end)``
#: are placed a millisecond apart from the times they must include or leave out.
_TICK = timedelta(milliseconds=1)


async def matching_times(client: Client, schedule_id: str, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's times in (``start``, ``end``] (Temporal's matching times), in UTC."""
    request = ListScheduleMatchingTimesRequest(namespace=client.namespace, schedule_id=schedule_id)
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    response = await client.workflow_service.list_schedule_matching_times(request)
    return [t.ToDatetime().replace(tzinfo=timezone.utc) for t in response.start_time]


async def backfill_cron(client: Client, name: str, owners: list[Owner], start: Any, end: Any) -> int:
    """Start, now, a run of cron ``name`` for each of its times in [``start``, ``end``); how many.

    :param owners: whose crons may be backfilled (an app's declared and runtime crons).
    :raises CRPCError: ``BAD_REQUEST`` for a window that is not two timezone-aware datetimes,
        the second after the first, or that holds more than :data:`MAX_RUNS` runs;
        ``NOT_FOUND`` for a cron the app does not have in Temporal.
    """
    first, last = _window(name, start, end)
    schedule_id = SCHEDULE_ID_PREFIX + name
    desc = await describe_schedule(client, schedule_id)
    app = owners[0].app
    if desc is None:
        raise CRPCError(
            "NOT_FOUND",
            f"app {app!r} has no cron {name!r} in Temporal: a declared cron is there once synced "
            "(crons sync), a runtime one once registered",
        )
    holder = await holder_of(client, desc)
    if not any(holder.belongs_to(owner) for owner in owners):
        raise CRPCError("NOT_FOUND", f"cron {name!r} is not app {app!r}'s: its schedule belongs to {holder.label()}")
    times = await matching_times(client, schedule_id, first - _TICK, last)
    if len(times) > MAX_RUNS:
        raise CRPCError(
            "BAD_REQUEST",
            f"cron {name!r} has more than {MAX_RUNS} runs from {start.isoformat()} to {end.isoformat()}: "
            f"backfill at most {MAX_RUNS} at once (Temporal starts about 10 a second); split the window",
        )
    if times:
        handle = client.get_schedule_handle(schedule_id)
        await handle.backfill(ScheduleBackfill(start_at=first, end_at=last, overlap=ScheduleOverlapPolicy.ALLOW_ALL))
    return len(times)


def _window(name: str, start: Any, end: Any) -> tuple[datetime, datetime]:
    """[``start``, ``end``) as the instants Temporal takes: ``start`` and just before ``end``."""
    for label, moment in (("start", start), ("end", end)):
        if not isinstance(moment, datetime):
            raise CRPCError("BAD_REQUEST", f"backfill of cron {name!r}: {label} must be a datetime, not {moment!r}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise CRPCError(
                "BAD_REQUEST",
                f"backfill of cron {name!r}: {label} must be timezone-aware (e.g. tzinfo=timezone.utc), "
                f"not the naive {moment.isoformat()}",
            )
    if end <= start:
        raise CRPCError(
            "BAD_REQUEST",
            f"backfill of cron {name!r}: end ({end.isoformat()}) must come after start ({start.isoformat()})",
        )
    try:
        return start.astimezone(timezone.utc), (end - _TICK).astimezone(timezone.utc)
    except OverflowError:
        raise CRPCError("BAD_REQUEST", f"backfill of cron {name!r}: the window is out of range") from None
