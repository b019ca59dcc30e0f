"""What the command line prints: tables for people, JSON for scripts.

Layer: command line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import pydantic_core

from .._wire import ms_to_datetime
from .._wire import now_ms as current_ms
from ..jobs._status import ScheduledFunction

#: ANSI colour of each job state (only when stdout is a terminal and NO_COLOR is unset).
STATE_COLORS = {
    "pending": "33",  # yellow
    "inProgress": "36",  # cyan
    "success": "32",  # green
    "failed": "31",  # red
    "canceled": "90",  # grey
}
_ERROR_WIDTH = 60


def use_color(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, code: str | None, *, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout (pydantic models and datetimes included)."""
    print(json.dumps(pydantic_core.to_jsonable_python(value), indent=2, ensure_ascii=False))


def job_json(job: ScheduledFunction) -> dict[str, Any]:
    """A job as Convex names its fields (``scheduledTime``, ``state.kind``)."""
    return job.model_dump(mode="json", by_alias=True)


def format_time(ms: int | None) -> str:
    """``2030-01-01 09:00:00 UTC`` (``-`` for none)."""
    if ms is None:
        return "-"
    return ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_relative(ms: int, now_ms: int | None = None) -> str:
    """``in 5s``, ``2m 30s ago``, ``in 1d 3h``: two units at most."""
    now_ms = current_ms() if now_ms is None else now_ms
    seconds = round(abs(ms - now_ms) / 1000)
    if seconds == 0:
        return "now"
    parts: list[tuple[int, str]] = []
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or parts:
            parts.append((seconds // size, unit))
            seconds %= size
        if len(parts) == 2:
            break
    amount = " ".join(f"{value}{unit}" for value, unit in parts if value)
    return f"in {amount}" if ms > now_ms else f"{amount} ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], colors: Sequence[Sequence[str | None]] = ()) -> str:
    """Left-aligned columns; ``colors[i][j]`` paints cell ``j`` of row ``i`` after padding."""
    color = use_color()
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for i, row in enumerate(rows):
        codes = colors[i] if i < len(colors) else [None] * len(row)
        cells = [paint(cell.ljust(w), code, color=color) for cell, w, code in zip(row, widths, codes, strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def jobs_table(jobs: Sequence[ScheduledFunction]) -> str:
    """The ``jobs list`` table: id, function, state, due and finished times (UTC), error."""
    headers = ["ID", "FUNCTION", "STATE", "SCHEDULED (UTC)", "COMPLETED (UTC)"]
    with_errors = any(j.state.error for j in jobs)
    if with_errors:
        headers.append("ERROR")
    rows, colors = [], []
    for job in jobs:
        row = [job.id, job.name, job.state.kind, _short_time(job.scheduled_time), _short_time(job.completed_time)]
        if with_errors:
            row.append(_truncate(job.state.error or "", _ERROR_WIDTH))
        rows.append(row)
        colors.append([None, None, STATE_COLORS.get(job.state.kind), None, None, None])
    return table(headers, rows, colors)


def job_details(job: ScheduledFunction) -> str:
    """One job, field by field, for ``jobs get`` and after ``schedule`` or ``cancel``."""
    color = use_color()
    fields = [
        ("id", job.id),
        ("function", job.name),
        ("state", paint(job.state.kind, STATE_COLORS.get(job.state.kind), color=color)),
    ]
    if job.state.error:
        fields.append(("error", job.state.error))
    if job.waiting:
        fields.append(("waiting", job.waiting))
    fields += [("key", job.key or "-"), ("priority", str(job.priority) if job.priority else "default (3)")]
    if job.fairness_key:
        fields.append(("fairness key", job.fairness_key))
    fields += [
        ("args", json.dumps(job.args, ensure_ascii=False)),
        ("scheduled", f"{format_time(job.scheduled_time)} ({format_relative(job.scheduled_time)})"),
        ("completed", format_time(job.completed_time)),
        ("created", format_time(job.creation_time)),
    ]
    width = max(len(name) for name, _ in fields)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in fields)


def _short_time(ms: int | None) -> str:
    return format_time(ms).removesuffix(" UTC")


def _truncate(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line per row, whatever the message holds
    return text if len(text) <= width else text[: width - 1] + "…"
