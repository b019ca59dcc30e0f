"""What a cron is, and the checks every cron passes: declared in code or registered at runtime.

A cron has a name, a timing (an interval of whole seconds, or a five-field expression read
in an IANA time zone), a target (a mutation or an action) and the target's arguments. The
checks raise ``ValueError``/``TypeError`` naming the cron: ``cron_jobs()`` raises them as
they are, ``ctx.crons.register`` turns them into ``CRPCError(BAD_REQUEST)``.

Layer: crons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from .._errors import CRPCError
from ..procedures._codec import encode_job_args
from ..procedures._procedures import Procedure

#: Every cron's schedule id starts with this, declared or registered at runtime.
SCHEDULE_ID_PREFIX = "kitcn-cron:"
#: The longest cron name (it becomes part of a schedule id and of its runs' workflow ids).
MAX_CRON_NAME_LENGTH = 200
#: Temporal's schedules fire at most once a second.
MIN_INTERVAL = timedelta(seconds=1)

#: ``cron_jobs().interval(...)``'s units.
INTERVAL_UNITS = {"seconds": timedelta(seconds=1), "minutes": timedelta(minutes=1), "hours": timedelta(hours=1)}
#: ``ctx.crons.register(..., {"interval_ms": n}, ...)``'s one unit.
RUNTIME_INTERVAL_UNITS = {"interval_ms": timedelta(milliseconds=1)}
_MONTH_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAY_NAMES = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
#: Numbers, ``*``, lists, ranges and steps: the cron syntax that croniter and Temporal read alike
#: (``L``, ``W``, ``#``, ``?`` and ``H`` are read differently or not at all by one of them).
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/\-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: What a runtime spec looks like, for its error messages.
_RUNTIME_SHAPES = (
    "{'cron': 'm h dom mon dow', 'tz': 'Europe/Paris'} (tz optional) or {'interval_ms': n}, "
    "either with 'overlap' and 'jitter_ms' (or 'jitter', a timedelta) if wanted"
)
#: What a cron does when a run is due while the previous one is still going: Temporal's
#: schedule overlap policies, by the name a declaration gives them.
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]
OVERLAP_POLICIES: tuple[str, ...] = get_args(Overlap)
#: The overlap policy of a cron that names none: no run starts while the previous one goes on.
DEFAULT_OVERLAP: Overlap = "skip"
#: The longest jitter: Temporal never delays a run past the next one anyway.
MAX_JITTER = timedelta(days=365)
#: The fields of a runtime spec besides its timing.
_POLICY_FIELDS = {"overlap", "jitter", "jitter_ms"}

Kind = Literal["interval", "cron"]


@dataclass(frozen=True)
class CronJob:
    """One cron: when it runs, which procedure it runs and with which arguments."""

    #: The cron's name; the schedule id is ``kitcn-cron:<name>``.
    name: str
    #: ``"interval"`` (every N seconds) or ``"cron"`` (a cron expression).
    kind: Kind
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
    #: What happens when a run is due while the previous one is still going (Temporal's overlap
    #: policy): ``"skip"`` (the default), ``"buffer_one"``, ``"buffer_all"``, ``"cancel_other"``,
    #: ``"terminate_other"`` or ``"allow_all"``.
    overlap: str = DEFAULT_OVERLAP
    #: Each run starts up to this much later than its time, at random (Temporal's jitter).
    jitter: timedelta = timedelta(0)

    @property
    def schedule_id(self) -> str:
        """The Temporal schedule that runs this cron."""
        return SCHEDULE_ID_PREFIX + self.name

    def next_runs(self, count: int = 3, *, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` run times after ``after`` (default: now), as UTC datetimes.

        Computed locally (croniter, or interval arithmetic aligned on the epoch as Temporal
        aligns it): the preview of a cron that is not in Temporal yet.
        """
        return preview_runs(self.spec, self.timezone, self.every, count, after)

    def temporal_cron_strings(self) -> list[str]:
        """The expression as Temporal's schedule spec takes it (see :func:`temporal_cron_strings`)."""
        return temporal_cron_strings(self.spec)


def preview_runs(
    spec: str, tz: str, every: timedelta | None, count: int = 3, after: datetime | None = None
) -> list[datetime]:
    """The next ``count`` runs of a cron after ``after`` (default: now), computed locally."""
    start = after or datetime.now(timezone.utc)
    if start.tzinfo is None:
        raise ValueError("next_runs(after=...) takes a timezone-aware datetime")
    if every is not None:
        step = every // timedelta(microseconds=1)
        since_epoch = (start - _EPOCH) // timedelta(microseconds=1)
        first = (since_epoch // step + 1) * step
        return [_EPOCH + timedelta(microseconds=first + i * step) for i in range(count)]
    it = croniter(spec, start.astimezone(ZoneInfo(tz)))
    return [it.get_next(datetime).astimezone(timezone.utc) for _ in range(count)]


def temporal_cron_strings(expression: str) -> list[str]:
    """A cron expression as Temporal's schedule spec takes it.

    Cron (and croniter) runs on days matching the day of month *or* the day of week when
    both are restricted, where Temporal requires both: such an expression becomes two,
    whose union is the cron meaning.
    """
    minute, hour, dom, month, dow = expression.split()
    if dom != "*" and dow != "*":
        return [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"]
    return [expression]


def runtime_cron(name: Any, spec: Any, proc: Procedure, label: str, args: Any) -> CronJob:
    """The cron ``ctx.crons.register(name, spec, proc, args)`` describes, every part checked.

    :param spec: ``{"cron": "m h dom mon dow", "tz": "Europe/Paris"}`` (``tz`` optional, UTC
        by default) or ``{"interval_ms": n}`` (whole seconds, at least one).
    :param label: the procedure's name in the app, as errors name it.
    """
    check_name(name)
    timing = set(spec) - _POLICY_FIELDS if isinstance(spec, Mapping) else None
    if timing not in ({"cron"}, {"cron", "tz"}, {"interval_ms"}) or {"jitter", "jitter_ms"} <= set(spec):
        raise ValueError(f"cron {name!r}: a spec is {_RUNTIME_SHAPES}, not {spec!r}")
    overlap = check_overlap(name, spec.get("overlap", DEFAULT_OVERLAP))
    if "jitter_ms" in spec:
        jitter = check_jitter(name, spec["jitter_ms"], "jitter_ms")
    else:
        jitter = check_jitter(name, spec.get("jitter"))
    if "interval_ms" in spec:
        period = check_interval(name, {"interval_ms": spec["interval_ms"]}, RUNTIME_INTERVAL_UNITS)
        payload = check_target(name, proc, args, label)
        return CronJob(name, "interval", describe_period(period), "UTC", proc, payload, period, overlap, jitter)
    tz = spec.get("tz", "UTC")
    expression = check_expression(name, spec["cron"], check_timezone(name, tz))
    return CronJob(name, "cron", expression, tz, proc, check_target(name, proc, args, label), None, overlap, jitter)


def spec_dict(
    kind: str, spec: str, tz: str, every_ms: int | None, overlap: str = DEFAULT_OVERLAP, jitter_ms: int = 0
) -> dict[str, Any]:
    """A cron's timing, and its overlap policy and jitter when not the defaults, in the shape
    ``ctx.crons.register`` takes them."""
    shape: dict[str, Any] = (
        {"interval_ms": every_ms} if kind == "interval" and every_ms is not None else {"cron": spec, "tz": tz}
    )
    if overlap != DEFAULT_OVERLAP:
        shape["overlap"] = overlap
    if jitter_ms:
        shape["jitter_ms"] = jitter_ms
    return shape


def check_overlap(name: str, overlap: Any) -> str:
    """One of :data:`OVERLAP_POLICIES`."""
    if not isinstance(overlap, str) or overlap not in OVERLAP_POLICIES:
        raise ValueError(
            f"cron {name!r}: overlap must be one of {', '.join(map(repr, OVERLAP_POLICIES))}, not {overlap!r}"
        )
    return overlap


def check_jitter(name: str, jitter: Any, field: str = "jitter") -> timedelta:
    """A jitter of whole milliseconds, at least 0: a ``timedelta`` (``None``: none), or a number
    of milliseconds for ``field="jitter_ms"``."""
    if field == "jitter_ms":
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not math.isfinite(jitter):
            raise ValueError(f"cron {name!r}: jitter_ms must be a finite number of milliseconds, not {jitter!r}")
        try:
            span = timedelta(milliseconds=jitter)
        except OverflowError:
            raise ValueError(f"cron {name!r}: the jitter of {jitter} ms is too long") from None
    elif jitter is None:
        return timedelta(0)
    elif isinstance(jitter, timedelta):
        span = jitter
    else:
        raise TypeError(f"cron {name!r}: jitter is a timedelta such as timedelta(seconds=30), not {jitter!r}")
    if span < timedelta(0) or span > MAX_JITTER or span % timedelta(milliseconds=1):
        raise ValueError(
            f"cron {name!r}: the jitter must be a whole number of milliseconds from 0 to {MAX_JITTER.days} days, "
            f"not {span}"
        )
    return span


def check_name(name: Any) -> None:
    """A cron name is 1 to 200 printable characters, not only spaces."""
    if not isinstance(name, str):
        raise TypeError(f"a cron name is a string, not {type(name).__name__}")
    if not name.strip() or len(name) > MAX_CRON_NAME_LENGTH or not name.isprintable():
        raise ValueError(
            f"invalid cron name {name[:80]!r}: expected 1 to {MAX_CRON_NAME_LENGTH} printable "
            "characters, not only spaces"
        )


def check_target(name: str, fn: Any, args: Any, label: str | None = None) -> dict[str, Any]:
    """``args`` checked against ``fn``'s input, JSON-ready; ``fn`` must be a mutation or an action."""
    if not isinstance(fn, Procedure):
        raise TypeError(f"cron {name!r}: the target must be a mutation or an action, not {fn!r}")
    label = label or fn.explicit_name or f"{fn.home_module}.{fn.fn.__name__}"
    if fn.kind == "query":
        raise ValueError(f"cron {name!r}: {label} is a query, and queries cannot be scheduled")
    try:
        payload, _ = encode_job_args(fn, label, args)
    except CRPCError as err:
        raise ValueError(f"cron {name!r}: {err.message}") from None
    return payload


def check_interval(name: str, every: Any, units: Mapping[str, timedelta] = INTERVAL_UNITS) -> timedelta:
    """A period of whole seconds, at least one: a ``timedelta`` or ``{unit: n}`` of ``units``."""
    if isinstance(every, timedelta):
        period = every
    elif isinstance(every, Mapping):
        if len(every) != 1 or next(iter(every)) not in units:
            *others, last = [f"{{{unit!r}: n}}" for unit in units]
            shapes = f"one of {', '.join(others)} or {last}" if others else last
            raise ValueError(f"cron {name!r}: an interval is exactly {shapes}, not {dict(every)!r}")
        ((unit, count),) = every.items()
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not math.isfinite(count):
            raise ValueError(f"cron {name!r}: the interval's {unit} must be a finite number, not {count!r}")
        try:
            period = units[unit] * count
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


def check_timezone(name: str, tz: Any) -> ZoneInfo:
    """The IANA time zone ``tz`` names."""
    if not isinstance(tz, str):
        raise TypeError(f"cron {name!r}: tz is an IANA time zone name such as 'Europe/Paris', not {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"cron {name!r}: unknown time zone {tz!r}: expected an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def check_expression(name: str, expression: Any, zone: ZoneInfo) -> str:
    """A five-field expression that croniter and Temporal read alike and that matches some date."""
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


def describe_period(period: timedelta) -> str:
    """``"every 2h"``: a period in its largest whole unit."""
    seconds = int(period.total_seconds())
    unit, size = next((u, n) for u, n in (("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
    return f"every {seconds // size}{unit}"
