"""Reading what users type: durations, times and JSON arguments.

Layer: command line.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(-?)(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)?")
_EPOCH_MS = re.compile(r"-?\d+")
#: Options whose value may start with '-' (a negative number, a mistake worth a clear message).
_SIGNED_VALUE_OPTIONS = ("--after", "--at")
_SIGNED_VALUE = re.compile(r"-[\d.]")


class UsageError(Exception):
    """A mistake in what the user typed: reported as one line, exit status 2."""


def parse_duration_ms(text: str) -> float:
    """``5s``, ``1500ms``, ``2m``, ``1h``, ``1d`` or a plain number of milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"--after {text!r} is not a duration: expected e.g. 5s, 1500ms, 2m, 1h, 1d or a number of milliseconds"
        )
    if match.group(1):
        raise UsageError(f"--after {text!r} must be >= 0: a delay from now, e.g. 5s (--at takes a time)")
    value = float(match.group(2)) * _UNITS_MS[match.group(3) or "ms"]
    if not math.isfinite(value):
        raise UsageError(f"--after {text!r} is too large")
    return value


def parse_time_ms(text: str) -> int:
    """An ISO 8601 time with a timezone (``2030-01-01T09:00:00Z``) or ms since the epoch."""
    text = text.strip()
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    return round(parse_iso_time(text, "--at").timestamp() * 1000)


def parse_iso_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with a timezone (``2030-01-01T09:00:00Z``), the value of ``option``."""
    text = text.strip()
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        expected = "or milliseconds since the epoch" if option == "--at" else "such as 2030-01-01T09:00:00Z"
        raise UsageError(f"{option} {text!r} is not a time: expected ISO 8601 with a timezone {expected}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(f"{option} {text!r} has no timezone: add one (e.g. {text}Z for UTC or {text}+02:00)")
    return when


def join_signed_values(argv: list[str]) -> list[str]:
    """``--after -5s`` as ``--after=-5s``: argparse reads a value starting with '-' as an option."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in _SIGNED_VALUE_OPTIONS and _SIGNED_VALUE.match(arg):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def parse_args_json(text: str | None) -> dict[str, Any] | None:
    """The procedure's arguments: a JSON object (``None`` when not given)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--args is not valid JSON: {err}") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UsageError(f'--args must be a JSON object such as \'{{"order_id": "o1"}}\', not {_json_kind(value)}')
    return value


def parse_target(text: str, option: str) -> tuple[str, str]:
    """``module.path:attribute`` split in two."""
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr.isidentifier():
        raise UsageError(f"{option} {text!r} must look like module.path:attribute, e.g. workflows.crons:crons")
    return module, attr


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "an array" if isinstance(value, list) else "a string"
