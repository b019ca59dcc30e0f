"""Every job against the ledgers: nothing lost, nothing doubled, canceled jobs never ran, caps held.

Pure functions over what the run collected (job rows, ledger rows, ledger lines, kill times),
so each rule is a few lines and a new one (debounced jobs) is one more function.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from kitcn_temporal import ScheduledFunction

FINAL = {"success", "failed", "canceled"}
MUTATIONS = {"ledger.write"}
#: Mutations that write no ledger row (they set something up).
SETUP = {"ledger.register_cron"}
ACTIONS = {"ledger.act", "capped.hold"}
#: Examples of each violation kept in the report.
EXAMPLES = 5


@dataclass
class ActionRun:
    """One action job's ledger lines: ``(event, pid, time)``."""

    lines: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def starts(self) -> int:
        return sum(1 for event, _, _ in self.lines if event == "start")

    @property
    def dones(self) -> int:
        return sum(1 for event, _, _ in self.lines if event == "done")


def read_action_ledger(text: str) -> dict[str, ActionRun]:
    runs: dict[str, ActionRun] = defaultdict(ActionRun)
    for line in text.splitlines():
        event, job_id, pid, at = line.split()
        runs[job_id].lines.append((event, int(pid), float(at)))
    return runs


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, what: str, job_id: str, detail: Any = "") -> None:
        self.counts[what] += 1
        if len(self.examples[what]) < EXAMPLES:
            self.examples[what].append(f"{job_id} {detail}".strip())


def check_job(
    report: Report, job_id: str, kind: str, row: ScheduledFunction | None, rows: int, run: ActionRun | None
) -> None:
    """One job's rules (semantics §3, §4, §9)."""
    if row is None:
        report.note("lost", job_id, f"{kind}: no such job")
        return
    state = row.state.kind
    report.counts[f"state.{state}"] += 1
    if state not in FINAL:
        report.note("lost", job_id, f"{kind}: still {state}")
        return
    report.counts["final"] += 1
    starts = run.starts if run else 0
    if state == "canceled" and (rows or starts):
        report.note("canceled_ran", job_id, f"{rows} rows, {starts} starts")
    if row.name in MUTATIONS | SETUP:
        check_mutation(report, job_id, kind, row, rows)
    elif row.name in ACTIONS:
        check_action(report, job_id, kind, row, run)


def check_cancel(report: Report, job_id: str, row: ScheduledFunction | None, canceled_at: float | None) -> None:
    """A cancel that returned before the job was due leaves it ``canceled`` (semantics §3)."""
    if row is None or canceled_at is None or row.scheduled_time / 1000 <= canceled_at:
        return
    if row.state.kind != "canceled":
        report.note("cancel_ignored", job_id, f"{row.state.kind} though canceled before it was due")


def check_mutation(report: Report, job_id: str, kind: str, row: ScheduledFunction, rows: int) -> None:
    """A mutation job succeeds with exactly one ledger row (a canceled one wrote none)."""
    state = row.state.kind
    expected = 0 if row.name in SETUP else 1
    if rows > 1:
        report.note("mutations_doubled", job_id, f"{kind}: {rows} rows")
    if state == "canceled":
        if kind != "canceled":
            report.note("canceled_unasked", job_id, kind)
        return
    if state != "success":
        report.note("lost", job_id, f"{kind}: mutation {state}: {row.state.error}")
    elif rows < expected:
        report.note("lost", job_id, f"{kind}: success without its ledger row")


def check_action(report: Report, job_id: str, kind: str, row: ScheduledFunction, run: ActionRun | None) -> None:
    """Actions run at most once; a successful one ran once, to the end; a failed one was cut by a fault."""
    state, starts, dones = row.state.kind, run.starts if run else 0, run.dones if run else 0
    if starts > 1:
        report.note("actions_doubled", job_id, f"{kind}: {starts} starts")
    if state == "success" and (starts, dones) != (1, 1):
        report.note("lost", job_id, f"{kind}: success with {starts} starts, {dones} dones")
    elif state == "failed":
        # Not a violation (at most once): which way the fault cut it.
        cut = any(event == "cut" for event, _, _ in (run.lines if run else []))
        how = "ran_to_the_end" if dones else "interrupted" if cut else "killed_mid_run" if starts else "never_started"
        report.note(f"actions_failed.{how}", job_id, row.state.error)
    elif state == "canceled" and kind != "canceled":
        report.note("canceled_unasked", job_id, kind)


def check_unknown(report: Report, jobs: set[str], ledger_rows: Counter[str], runs: dict[str, ActionRun]) -> None:
    """A ledger entry of no job the run knows about ran something nobody scheduled."""
    for job_id in (set(ledger_rows) | set(runs)) - jobs:
        report.note("unknown_runs", job_id)


def intervals(
    job_ids: list[str], runs: dict[str, ActionRun], rows: dict[str, ScheduledFunction | None], killed: dict[int, float]
) -> list[tuple[float, float]]:
    """When each capped run held its slot: start to done (or to ``cut``, interrupted in its
    process); a run that left neither was killed: to its worker's kill or, failing that, its
    job's end."""
    spans = []
    for job_id in job_ids:
        run = runs.get(job_id)
        if run is None:
            continue
        starts = [(pid, at) for event, pid, at in run.lines if event == "start"]
        dones = [at for event, _, at in run.lines if event in ("done", "cut")]
        for i, (pid, at) in enumerate(starts):
            row = rows.get(job_id)
            completed = (row.completed_time or 0) / 1000 if row is not None else 0.0
            end = dones[i] if i < len(dones) else killed.get(pid, completed or at)
            spans.append((at, end))
    return spans


def cap_exceeded(spans: list[tuple[float, float]], bound: int) -> tuple[int, int]:
    """How many starts found ``bound`` or more runs already going, and the most at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    running = most = over = 0
    for _, step in events:
        running += step
        most = max(most, running)
        if step == 1 and running > bound:
            over += 1
    return over, most
