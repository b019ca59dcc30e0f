"""The checks of flow-control options at a schedule call: debounce, ttl, fairness.

Layer: jobs: the scheduler's (:mod:`kitcn_temporal.jobs._scheduler`) helpers.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Protocol

from .._errors import CRPCError
from .._wire import Debounce, now_ms, timedelta_to_ms
from ..procedures._codec import validate_input
from ..procedures._names import check_key
from ..procedures._procedures import Procedure, check_fairness_key, check_fairness_weight

#: How far ahead a job may be scheduled (and the longest debounce period, max wait or ttl).
MAX_AHEAD = timedelta(days=5 * 365 + 1)


class FlowOptions(Protocol):
    """The fairness options of a schedule call (``ScheduleOptions``)."""

    @property
    def fairness_key(self) -> str | None: ...

    @property
    def fairness_weight(self) -> float | None: ...


def debounce_conflict(key: str, held_by: str, name: str) -> str:
    return f"debounce key {key!r} holds a pending job of {held_by}: a key debounces one function, not {name} too"


def debounce_of(key: Any, period: Any, max_wait: Any, name: str) -> Debounce:
    """A debounced call's key, period and max wait, checked (``BAD_REQUEST`` naming the option)."""
    checked = check_key(key, name, "debounce key")
    period_ms = _span_ms(period, f"debounce period of {name}")
    if period_ms <= 0:
        raise CRPCError("BAD_REQUEST", f"debounce period of {name} must be > 0, not {period!r}")
    wait_ms = None if max_wait is None else _span_ms(max_wait, f"debounce max_wait of {name}")
    if wait_ms is not None and wait_ms < period_ms:
        raise CRPCError(
            "BAD_REQUEST",
            f"debounce max_wait of {name} ({max_wait!r}) must be at least its period ({period!r}), or None",
        )
    return Debounce(checked, period_ms, wait_ms, now_ms())


def ttl_ms(ttl: Any, name: str) -> int:
    """``schedule.options(ttl=)`` in ms: a span > 0 (ms or a timedelta)."""
    ms = _span_ms(ttl, f"ttl of {name}")
    if ms <= 0:
        raise CRPCError("BAD_REQUEST", f"ttl of {name} must be > 0 (how long the job may wait to start), not {ttl!r}")
    return ms


def _span_ms(span: Any, what: str) -> int:
    """A span given as ms or a timedelta, in whole ms; ``BAD_REQUEST`` naming ``what`` otherwise."""
    if isinstance(span, timedelta):
        ms = span.total_seconds() * 1000
    elif isinstance(span, (int, float)) and not isinstance(span, bool):
        ms = as_float(span, what)
    else:
        raise CRPCError("BAD_REQUEST", f"{what} must be milliseconds (a number) or a timedelta, not {span!r}")
    if not math.isfinite(ms) or ms > timedelta_to_ms(MAX_AHEAD):
        raise CRPCError("BAD_REQUEST", f"{what} must be finite and at most 5 years, not {span!r}")
    return math.ceil(ms) if ms > 0 else math.floor(ms)


def fairness_of(proc: Procedure, name: str, args: Any, options: FlowOptions) -> tuple[str | None, float | None]:
    """A job's fairness key and weight: the call's, else the procedure's (``.fairness()``, or
    ``.rate_limit(key=)``, whose key is the one its rate holds for)."""
    if options.fairness_key is not None and proc.rate_limit_key is not None:
        raise CRPCError(
            "BAD_REQUEST",
            f"{name} is rate limited per key (.rate_limit(key=...)): its jobs' fairness key is that key, "
            "so schedule.options(fairness_key=...) cannot set another",
        )
    weight = proc.fairness_weight
    if options.fairness_weight is not None:
        weight = check_fairness_weight(options.fairness_weight, f"fairness_weight of {name}")
    if options.fairness_key is not None:
        return check_fairness_key(options.fairness_key, f"fairness_key of {name}"), weight
    key_fn = proc.rate_limit_key or proc.fairness_key
    if key_fn is None:
        return None, weight
    what = "rate limit key" if proc.rate_limit_key is not None else "fairness key"
    model = validate_input(proc, name, args)
    try:
        key = key_fn(model)
    except Exception as err:
        raise CRPCError("BAD_REQUEST", f"the {what} function of {name} failed on these arguments: {err!r}") from None
    return check_fairness_key(key, f"the {what} of {name} (what its key function returned)"), weight


def as_float(value: float, what: str) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        raise CRPCError("BAD_REQUEST", f"{what} is out of range: a number of {len(str(abs(value)))} digits") from None
