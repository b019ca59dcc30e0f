"""docs/semantics.md §6 and §12: a ``tz=`` cron, declared or registered at runtime, keeps its local
time across daylight-saving changes: once a day at the intended local time, on Temporal's own
preview of the schedule (``ListScheduleMatchingTimes`` over a window around each change)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from helpers import token
from kitcn_temporal import KitcnClient, cron_jobs
from testapp import cronjobs

#: (zone, the day of a change in 2030): Europe springs forward at 02:00 local and falls back
#: at 03:00; the US springs forward at 02:00 and falls back at 02:00, on other dates.
CHANGES = [
    ("Europe/Paris", date(2030, 3, 31)),
    ("Europe/Paris", date(2030, 10, 27)),
    ("America/New_York", date(2030, 3, 10)),
    ("America/New_York", date(2030, 11, 3)),
]
CHANGE_IDS = ["paris spring-forward", "paris fall-back", "new york spring-forward", "new york fall-back"]

Create = Callable[[str, str], Awaitable[str]]


@pytest.fixture(params=["declared", "runtime"])
async def create(request: pytest.FixtureRequest, kitcn: KitcnClient, client: Client) -> AsyncIterator[Create]:
    """Makes a cron of ``expression`` in ``tz``, declared and synced or registered at runtime;
    returns its schedule id (deleted when the test ends)."""
    made: list[str] = []

    async def make(expression: str, tz: str) -> str:
        name = f"dst {request.param} {token()[:8]}"
        if request.param == "declared":
            crons = cron_jobs()
            crons.cron(name, expression, cronjobs.tick, {"token": "t"}, tz=tz)
            await crons.sync(kitcn)
        else:
            await kitcn.crons.register(name, {"cron": expression, "tz": tz}, cronjobs.tick, {"token": "t"})
        made.append(f"kitcn-cron:{name}")
        return made[-1]

    yield make
    for schedule_id in made:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule_id).delete()


async def matching_times(client: Client, schedule_id: str, start: datetime, end: datetime) -> list[datetime]:
    """When Temporal would run the schedule between ``start`` and ``end``."""
    bounds = Timestamp(), Timestamp()
    bounds[0].FromDatetime(start)
    bounds[1].FromDatetime(end)
    response = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(
            namespace=client.namespace, schedule_id=schedule_id, start_time=bounds[0], end_time=bounds[1]
        )
    )
    return [t.ToDatetime(tzinfo=timezone.utc) for t in response.start_time]


def around(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Noon two days before the change to noon two days after, local time, as UTC."""
    start = datetime.combine(day - timedelta(days=2), time(12), tzinfo=zone)
    return start.astimezone(timezone.utc), (start + timedelta(days=4)).astimezone(timezone.utc)


@pytest.mark.parametrize(("tz", "day"), CHANGES, ids=CHANGE_IDS)
async def test_a_tz_cron_runs_once_a_day_at_its_local_time_across_a_dst_change(
    client: Client, create: Create, tz: str, day: date
) -> None:
    zone = ZoneInfo(tz)
    schedule_id = await create("30 9 * * *", tz)
    start, end = around(day, zone)

    runs = await matching_times(client, schedule_id, start, end)

    local = [t.astimezone(zone) for t in runs]
    assert [t.date() for t in local] == [day + timedelta(days=n) for n in (-1, 0, 1, 2)]
    assert {t.strftime("%H:%M") for t in local} == {"09:30"}
    offsets = {t.utcoffset() for t in local}
    assert len(offsets) == 2  # the same local time, so another UTC time after the change
    it = croniter("30 9 * * *", start.astimezone(zone))
    assert runs == [it.get_next(datetime).astimezone(timezone.utc) for _ in runs]


async def test_a_weekly_tz_cron_keeps_its_local_time_on_the_day_of_the_change(client: Client, create: Create) -> None:
    """Sunday 08:00 in Paris: the 31 March 2030 change happens that very night."""
    zone = ZoneInfo("Europe/Paris")
    schedule_id = await create("0 8 * * sun", "Europe/Paris")
    start = datetime(2030, 3, 20, tzinfo=timezone.utc)

    runs = await matching_times(client, schedule_id, start, start + timedelta(days=21))

    assert [t.astimezone(zone).isoformat() for t in runs] == [
        "2030-03-24T08:00:00+01:00",
        "2030-03-31T08:00:00+02:00",
        "2030-04-07T08:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("expression", "tz", "day", "expected"),
    [
        # The change skips 02:00-03:00 in Paris: Temporal does not run 02:30 that day.
        ("30 2 * * *", "Europe/Paris", date(2030, 3, 31), []),
        # 02:00-03:00 comes twice in Paris: Temporal runs 02:30 once, on the second pass.
        ("30 2 * * *", "Europe/Paris", date(2030, 10, 27), ["02:30+01:00"]),
        # 01:00-02:00 comes twice in New York: Temporal runs 01:30 on both passes.
        ("30 1 * * *", "America/New_York", date(2030, 11, 3), ["01:30-04:00", "01:30-05:00"]),
    ],
    ids=["skipped in paris", "repeated in paris", "repeated in new york"],
)
async def test_a_local_time_a_dst_change_skips_or_repeats_runs_as_temporal_documents(
    client: Client, create: Create, expression: str, tz: str, day: date, expected: list[str]
) -> None:
    """Temporal matches local times literally ("it might run zero, one, or two times in a day",
    temporalio/temporal#8205): the limit semantics §6 states. A server that changes it fails here."""
    zone = ZoneInfo(tz)
    schedule_id = await create(expression, tz)
    start, end = around(day, zone)

    runs = [t.astimezone(zone) for t in await matching_times(client, schedule_id, start, end)]

    assert [t.isoformat(timespec="minutes")[11:] for t in runs if t.date() == day] == expected
