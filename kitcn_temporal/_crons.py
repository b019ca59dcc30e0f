"""Cron jobs: declared in code, kept in Temporal as schedules (``kitcn-cron:<name>``).

``crons = cron_jobs()`` collects declarations with Convex's shapes (``interval``,
``cron``, ``hourly``, ``daily``, ``weekly``, ``monthly``), each checked when declared;
``await crons.sync(client)`` makes Temporal's schedules match them.

Layer: crons, with ``_cron_sync``: the one pair of modules allowed to import each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from temporalio.client import Client

from ._codec import encode_job_args
from ._cron_sync import SCHEDULE_ID_PREFIX, CronStatus, SyncReport, cron_statuses, resolve_target, sync_crons
from ._errors import CRPCError
from ._procedures import Procedure

if TYPE_CHECKING:
    from ._app import App
    from ._client import KitcnClient

#: The longest cron name (it becomes part of a schedule id and of its runs' workflow ids).
MAX_CRON_NAME_LENGTH = 200
#: Temporal's schedules fire at most once a second.
MIN_INTERVAL = timedelta(seconds=1)
#: ``weekly(..., {"day_of_week": ...})``: Convex's day names.
DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

_INTERVAL_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}
_MONTH_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAY_NAMES = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
#: Numbers, ``*``, lists, ranges and steps: the cron syntax that croniter and Temporal read alike
#: (``L``, ``W``, ``#``, ``?`` and ``H`` are read differently or not at all by one of them).
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/\-]+")

Interval = Mapping[str, float] | timedelta
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class CronJob:
    """One declared cron: when it runs, which procedure it runs and with which arguments."""

    #: The name given at declaration; the schedule id is ``kitcn-cron:<name>``.
    name: str
    #: ``"interval"`` (every N seconds) or ``"cron"`` (a cron expression).
    kind: Literal["interval", "cron"]
    #: The timing as declared: ``"every 2h"`` or a cron expression such as ``"0 9 * * *"``.
    spec: str
    #: IANA time zone the expression is read in (``"UTC"`` unless ``cron(..., tz=...)``).
    timezone: str
    #: The procedure each run calls (a mutation or an action).
    procedure: Procedure
    #: The run's arguments, validated against the procedure's input model, JSON-ready.
    args: dict[str, Any]
    #: The period of an interval cron (``None`` for an expression).
    every: timedelta | None = None

    @property
    def schedule_id(self) -> str:
        """The Temporal schedule that runs this cron."""
        return SCHEDULE_ID_PREFIX + self.name

    def next_runs(self, count: int = 3, *, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` run times after ``after`` (default: now), as UTC datetimes.

        Computed locally (croniter, or interval arithmetic aligned on the epoch as Temporal
        aligns it): the preview of a cron that is not synced yet.
        """
        start = after or datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError("next_runs(after=...) takes a timezone-aware datetime")
        if self.every is not None:
            step = self.every // timedelta(microseconds=1)
            since_epoch = (start - _EPOCH) // timedelta(microseconds=1)
            first = (since_epoch // step + 1) * step
            return [_EPOCH + timedelta(microseconds=first + i * step) for i in range(count)]
        it = croniter(self.spec, start.astimezone(ZoneInfo(self.timezone)))
        return [it.get_next(datetime).astimezone(timezone.utc) for _ in range(count)]

    def temporal_cron_strings(self) -> list[str]:
        """The expression as Temporal's schedule spec takes it.

        Cron (and croniter) runs on days matching the day of month *or* the day of week when
        both are restricted, where Temporal requires both: such an expression becomes two,
        whose union is the cron meaning.
        """
        minute, hour, dom, month, dow = self.spec.split()
        if dom != "*" and dow != "*":
            return [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"]
        return [self.spec]


class CronJobs:
    """The cron declarations of an app: ``crons = cron_jobs()``.

    Every declaration is checked at once (name, timing, target, arguments) and raises
    ``ValueError``/``TypeError`` naming the cron; nothing is recorded when it fails.
    ``await crons.sync(client)`` then makes Temporal's schedules match.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, CronJob] = {}

    def interval(self, name: str, every: Interval, fn: Procedure, args: Any = None) -> CronJob:
        """Run ``fn`` every ``{"seconds" | "minutes" | "hours": n}`` or ``timedelta``.

        Runs fall on multiples of the period since the epoch (``{"hours": 2}``: 00:00, 02:00, ...).

        :param name: the cron's unique, printable name.
        :param every: a dict with exactly one unit, or a ``timedelta``: a whole number of
            seconds, at least one.
        :param fn: the mutation or action to run.
        :param args: its arguments (a model instance or a dict), validated now.
        """
        _check_name(name)
        period = _check_interval(name, every)
        return self._add(name, "interval", _describe_period(period), "UTC", fn, args, every=period)

    def cron(self, name: str, expression: str, fn: Procedure, args: Any = None, *, tz: str = "UTC") -> CronJob:
        """Run ``fn`` on a cron expression ``"minute hour day-of-month month day-of-week"``.

        :param expression: five fields of numbers, ``*``, lists, ranges, steps and
            month/day names (``"0 9 * * mon-fri"``).
        :param tz: the IANA time zone the expression is read in (default UTC).
        """
        _check_name(name)
        zone = _check_timezone(name, tz)
        return self._add(name, "cron", _check_expression(name, expression, zone), tz, fn, args)

    def hourly(self, name: str, at: Mapping[str, int], fn: Procedure, args: Any = None) -> CronJob:
        """Run ``fn`` every hour at ``{"minute_utc": m}``."""
        (minute,) = _check_shape(name, "hourly", at, ("minute_utc",))
        return self.cron(name, f"{minute} * * * *", fn, args)

    def daily(self, name: str, at: Mapping[str, int], fn: Procedure, args: Any = None) -> CronJob:
        """Run ``fn`` every day at ``{"hour_utc": h, "minute_utc": m}``."""
        hour, minute = _check_shape(name, "daily", at, ("hour_utc", "minute_utc"))
        return self.cron(name, f"{minute} {hour} * * *", fn, args)

    def weekly(self, name: str, at: Mapping[str, Any], fn: Procedure, args: Any = None) -> CronJob:
        """Run ``fn`` every week at ``{"day_of_week": "monday", "hour_utc": h, "minute_utc": m}``."""
        day, hour, minute = _check_shape(name, "weekly", at, ("day_of_week", "hour_utc", "minute_utc"))
        return self.cron(name, f"{minute} {hour} * * {DAYS_OF_WEEK.index(day)}", fn, args)

    def monthly(self, name: str, at: Mapping[str, int], fn: Procedure, args: Any = None) -> CronJob:
        """Run ``fn`` every month at ``{"day": d, "hour_utc": h, "minute_utc": m}``.

        A month without that day (``"day": 31`` in April) has no run.
        """
        day, hour, minute = _check_shape(name, "monthly", at, ("day", "hour_utc", "minute_utc"))
        return self.cron(name, f"{minute} {hour} {day} * *", fn, args)

    def __iter__(self) -> Iterator[CronJob]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __getitem__(self, name: str) -> CronJob:
        return self._jobs[name]

    async def sync(
        self, client: KitcnClient | Client, app: App | None = None, *, task_queue: str | None = None
    ) -> SyncReport:
        """Make the app's ``kitcn-cron:`` schedules match these declarations.

        Creates missing schedules, updates those whose declaration changed (keeping their
        paused state and note), deletes the app's ``kitcn-cron:`` schedules no longer
        declared, and writes nothing for the rest. Only schedules this app created (its
        ``App.name``; for schedules from older versions, its task queue) are updated or
        deleted: a declared name held by another app's schedule raises
        :class:`~kitcn_temporal.CronConflictError` naming both, before anything is written.

        :param client: a :class:`~kitcn_temporal.KitcnClient` (its app and task queue are
            used), or a Temporal client: its app is ``app``, else the app of the
            :class:`~kitcn_temporal.KitcnPlugin` it was connected with.
        :param app: names the procedures and gives their run options.
        :param task_queue: where runs execute (default: the client's, else the app's).

        Deletion finds stale schedules through Temporal's list, which lags writes by about
        a second: a schedule created a moment before may be deleted only by the next sync.
        """
        temporal, resolved_app, queue = resolve_target(client, app, task_queue)
        return await sync_crons(list(self), temporal, resolved_app, queue)

    async def list(
        self, client: KitcnClient | Client, app: App | None = None, *, task_queue: str | None = None
    ) -> list[CronStatus]:
        """One row per declared cron, then one per stale ``kitcn-cron:`` schedule of this app.

        A synced cron shows Temporal's next run times, paused state, note and its last
        run's job; a cron not synced yet shows a local preview of its next runs. Takes
        the same arguments as :meth:`sync`.
        """
        temporal, resolved_app, queue = resolve_target(client, app, task_queue)
        return await cron_statuses(list(self), temporal, resolved_app, queue)

    def _add(
        self,
        name: str,
        kind: Literal["interval", "cron"],
        spec: str,
        tz: str,
        fn: Procedure,
        args: Any,
        *,
        every: timedelta | None = None,
    ) -> CronJob:
        _check_name(name)
        if name in self._jobs:
            raise ValueError(f"cron {name!r} is declared twice: cron names must be unique")
        payload = _check_target(name, fn, args)
        job = CronJob(name, kind, spec, tz, fn, payload, every)
        self._jobs[name] = job
        return job


def cron_jobs() -> CronJobs:
    """A new, empty set of cron declarations."""
    return CronJobs()


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a cron name is a string, not {type(name).__name__}")
    if not name.strip() or len(name) > MAX_CRON_NAME_LENGTH or not name.isprintable():
        raise ValueError(
            f"invalid cron name {name[:80]!r}: expected 1 to {MAX_CRON_NAME_LENGTH} printable "
            "characters, not only spaces"
        )


def _check_target(name: str, fn: Any, args: Any) -> dict[str, Any]:
    if not isinstance(fn, Procedure):
        raise TypeError(f"cron {name!r}: the target must be a mutation or an action, not {fn!r}")
    label = fn.explicit_name or f"{fn.home_module}.{fn.fn.__name__}"
    if fn.kind == "query":
        raise ValueError(f"cron {name!r}: {label} is a query, and queries cannot be scheduled")
    try:
        payload, _ = encode_job_args(fn, label, args)
    except CRPCError as err:
        raise ValueError(f"cron {name!r}: {err.message}") from None
    return payload


def _check_interval(name: str, every: Any) -> timedelta:
    if isinstance(every, timedelta):
        period = every
    elif isinstance(every, Mapping):
        if len(every) != 1 or next(iter(every)) not in _INTERVAL_UNITS:
            raise ValueError(
                f"cron {name!r}: an interval is exactly one of {{'seconds': n}}, {{'minutes': n}} "
                f"or {{'hours': n}}, not {dict(every)!r}"
            )
        ((unit, count),) = every.items()
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not math.isfinite(count):
            raise ValueError(f"cron {name!r}: the interval's {unit} must be a finite number, not {count!r}")
        try:
            period = timedelta(seconds=count * _INTERVAL_UNITS[unit])
        except OverflowError:
            raise ValueError(f"cron {name!r}: the interval of {count} {unit} is too long") from None
    else:
        raise TypeError(f"cron {name!r}: an interval is a dict such as {{'hours': 2}} or a timedelta, not {every!r}")
    if period <= timedelta(0):
        raise ValueError(f"cron {name!r}: the interval must be positive, not {period}")
    if period < MIN_INTERVAL or period % MIN_INTERVAL:
        # Temporal's schedules count in whole seconds.
        raise ValueError(f"cron {name!r}: the interval must be a whole number of seconds, not {period}")
    return period


def _check_timezone(name: str, tz: Any) -> ZoneInfo:
    if not isinstance(tz, str):
        raise TypeError(f"cron {name!r}: tz is an IANA time zone name such as 'Europe/Paris', not {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"cron {name!r}: unknown time zone {tz!r}: expected an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def _check_expression(name: str, expression: Any, zone: ZoneInfo) -> str:
    if not isinstance(expression, str):
        raise TypeError(f"cron {name!r}: the cron expression is a string, not {expression!r}")
    fields = expression.split()
    problem = None
    if len(fields) != 5:
        problem = f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    else:
        for position, field in enumerate(fields):
            words = {w.lower() for w in re.findall(r"[A-Za-z]+", field)}
            allowed = _MONTH_NAMES if position == 3 else _DAY_NAMES if position == 4 else set()
            if not _CRON_FIELD.fullmatch(field) or not words <= allowed:
                problem = f"field {field!r} uses syntax other than numbers, *, lists, ranges, steps and names"
                break
    if problem is None:
        try:
            croniter(" ".join(fields), datetime.now(zone)).get_next(datetime)
        except CroniterBadDateError:
            problem = "it never matches a date"
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as err:
            problem = str(err) or type(err).__name__
    if problem is not None:
        raise ValueError(f"cron {name!r}: invalid cron expression {expression!r}: {problem}")
    return " ".join(fields)


_RANGES: dict[str, tuple[int, int]] = {"minute_utc": (0, 59), "hour_utc": (0, 23), "day": (1, 31)}


def _check_shape(name: str, method: str, at: Any, keys: tuple[str, ...]) -> list[Any]:
    _check_name(name)
    shape = "{" + ", ".join(f"'{k}': ..." for k in keys) + "}"
    if not isinstance(at, Mapping) or set(at) != set(keys):
        raise ValueError(f"cron {name!r}: {method}() takes {shape}, not {at!r}")
    values = []
    for key in keys:
        value = at[key]
        if key == "day_of_week":
            if value not in DAYS_OF_WEEK:
                raise ValueError(f"cron {name!r}: day_of_week must be one of {', '.join(DAYS_OF_WEEK)}, not {value!r}")
        else:
            low, high = _RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"cron {name!r}: {key} must be an integer from {low} to {high}, not {value!r}")
        values.append(value)
    return values


def _describe_period(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    unit, size = next((u, n) for u, n in (("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
    return f"every {seconds // size}{unit}"
