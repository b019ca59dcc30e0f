"""Cron jobs: declared in code, kept in Temporal as schedules (``kitcn-cron:<name>``).

``crons = cron_jobs()`` collects declarations with Convex's shapes (``interval``,
``cron``, ``hourly``, ``daily``, ``weekly``, ``monthly``), each checked when declared;
``await crons.sync(client)`` makes Temporal's schedules match them.

What a cron is and its checks are in ``_spec`` (shared with runtime crons), its schedule
in ``_schedules``, the sync in ``_sync``.

Layer: crons.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import Client

from ..procedures._procedures import Procedure
from ._spec import (
    DEFAULT_OVERLAP,
    MAX_CRON_NAME_LENGTH,
    MIN_INTERVAL,
    OVERLAP_POLICIES,
    CronJob,
    Kind,
    Overlap,
    check_expression,
    check_interval,
    check_jitter,
    check_name,
    check_overlap,
    check_target,
    check_timezone,
    describe_period,
)
from ._sync import AppClient, CronStatus, SyncReport, cron_statuses, resolve_target, sync_crons

if TYPE_CHECKING:
    from .._app import App

__all__ = [
    "DAYS_OF_WEEK",
    "MAX_CRON_NAME_LENGTH",
    "MIN_INTERVAL",
    "OVERLAP_POLICIES",
    "CronJob",
    "CronJobs",
    "cron_jobs",
]

#: ``weekly(..., {"day_of_week": ...})``: Convex's day names.
DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

Interval = Mapping[str, float] | timedelta


class CronJobs:
    """The cron declarations of an app: ``crons = cron_jobs()``.

    Every declaration is checked at once (name, timing, target, arguments) and raises
    ``ValueError``/``TypeError`` naming the cron; nothing is recorded when it fails.
    ``await crons.sync(client)`` then makes Temporal's schedules match.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, CronJob] = {}

    def interval(
        self,
        name: str,
        every: Interval,
        fn: Procedure,
        args: Any = None,
        *,
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` every ``{"seconds" | "minutes" | "hours": n}`` or ``timedelta``.

        Runs fall on multiples of the period since the epoch (``{"hours": 2}``: 00:00, 02:00, ...).

        :param name: the cron's unique, printable name.
        :param every: a dict with exactly one unit, or a ``timedelta``: a whole number of
            seconds, at least one.
        :param fn: the mutation or action to run.
        :param args: its arguments (a model instance or a dict), validated now.
        :param overlap: what happens when a run is due while the previous one is still going,
            as Temporal's overlap policies: ``"skip"`` it (the default), ``"buffer_one"`` (run
            it once the previous ends; one waits at most), ``"buffer_all"`` (every one waits its
            turn), ``"cancel_other"`` (cancel the previous, then run), ``"terminate_other"``
            (terminate the previous, then run), ``"allow_all"`` (run at once, side by side).
        :param jitter: start each run up to this much later than its time, at random (whole
            milliseconds; Temporal never delays a run past the next one).
        """
        check_name(name)
        period = check_interval(name, every)
        return self._add(
            name, "interval", describe_period(period), "UTC", fn, args, every=period, overlap=overlap, jitter=jitter
        )

    def cron(
        self,
        name: str,
        expression: str,
        fn: Procedure,
        args: Any = None,
        *,
        tz: str = "UTC",
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` on a cron expression ``"minute hour day-of-month month day-of-week"``.

        :param expression: five fields of numbers, ``*``, lists, ranges, steps and
            month/day names (``"0 9 * * mon-fri"``).
        :param tz: the IANA time zone the expression is read in (default UTC).
        :param overlap: ``"skip"`` (default), ``"buffer_one"``, ``"buffer_all"``,
            ``"cancel_other"``, ``"terminate_other"`` or ``"allow_all"``: see :meth:`interval`.
        :param jitter: start each run up to this much later than its time, at random.
        """
        check_name(name)
        zone = check_timezone(name, tz)
        expression = check_expression(name, expression, zone)
        return self._add(name, "cron", expression, tz, fn, args, overlap=overlap, jitter=jitter)

    def hourly(
        self,
        name: str,
        at: Mapping[str, int],
        fn: Procedure,
        args: Any = None,
        *,
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` every hour at ``{"minute_utc": m}`` (``overlap``, ``jitter``: see :meth:`interval`)."""
        (minute,) = _check_shape(name, "hourly", at, ("minute_utc",))
        return self.cron(name, f"{minute} * * * *", fn, args, overlap=overlap, jitter=jitter)

    def daily(
        self,
        name: str,
        at: Mapping[str, int],
        fn: Procedure,
        args: Any = None,
        *,
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` every day at ``{"hour_utc": h, "minute_utc": m}`` (``overlap``, ``jitter``:
        see :meth:`interval`)."""
        hour, minute = _check_shape(name, "daily", at, ("hour_utc", "minute_utc"))
        return self.cron(name, f"{minute} {hour} * * *", fn, args, overlap=overlap, jitter=jitter)

    def weekly(
        self,
        name: str,
        at: Mapping[str, Any],
        fn: Procedure,
        args: Any = None,
        *,
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` every week at ``{"day_of_week": "monday", "hour_utc": h, "minute_utc": m}``
        (``overlap``, ``jitter``: see :meth:`interval`)."""
        day, hour, minute = _check_shape(name, "weekly", at, ("day_of_week", "hour_utc", "minute_utc"))
        expression = f"{minute} {hour} * * {DAYS_OF_WEEK.index(day)}"
        return self.cron(name, expression, fn, args, overlap=overlap, jitter=jitter)

    def monthly(
        self,
        name: str,
        at: Mapping[str, int],
        fn: Procedure,
        args: Any = None,
        *,
        overlap: Overlap = DEFAULT_OVERLAP,
        jitter: timedelta | None = None,
    ) -> CronJob:
        """Run ``fn`` every month at ``{"day": d, "hour_utc": h, "minute_utc": m}`` (``overlap``,
        ``jitter``: see :meth:`interval`).

        A month without that day (``"day": 31`` in April) has no run.
        """
        day, hour, minute = _check_shape(name, "monthly", at, ("day", "hour_utc", "minute_utc"))
        return self.cron(name, f"{minute} {hour} {day} * *", fn, args, overlap=overlap, jitter=jitter)

    def __iter__(self) -> Iterator[CronJob]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __getitem__(self, name: str) -> CronJob:
        return self._jobs[name]

    async def sync(
        self, client: AppClient | Client, app: App | None = None, *, task_queue: str | None = None
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
        self, client: AppClient | Client, app: App | None = None, *, task_queue: str | None = None
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
        kind: Kind,
        spec: str,
        tz: str,
        fn: Procedure,
        args: Any,
        *,
        every: timedelta | None = None,
        overlap: Any = DEFAULT_OVERLAP,
        jitter: Any = None,
    ) -> CronJob:
        check_name(name)
        if name in self._jobs:
            raise ValueError(f"cron {name!r} is declared twice: cron names must be unique")
        policy, delay = check_overlap(name, overlap), check_jitter(name, jitter)
        payload = check_target(name, fn, args)
        job = CronJob(name, kind, spec, tz, fn, payload, every, policy, delay)
        self._jobs[name] = job
        return job


def cron_jobs() -> CronJobs:
    """A new, empty set of cron declarations."""
    return CronJobs()


_RANGES: dict[str, tuple[int, int]] = {"minute_utc": (0, 59), "hour_utc": (0, 23), "day": (1, 31)}


def _check_shape(name: str, method: str, at: Any, keys: tuple[str, ...]) -> list[Any]:
    check_name(name)
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
