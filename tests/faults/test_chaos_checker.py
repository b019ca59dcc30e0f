"""The chaos run's checker (``bench.chaos._check``) on made-up ledgers: it sees what it must see.

Without these, a checker that counts nothing would pass every chaos run.
"""

from __future__ import annotations

from collections import Counter

from bench.chaos import _check
from kitcn_temporal import ScheduledFunction


def row(job_id: str, name: str, kind: str, error: str | None = None, completed: int = 0) -> ScheduledFunction:
    return ScheduledFunction.model_validate(
        {
            "id": job_id,
            "name": name,
            "scheduled_time": 0,
            "completed_time": completed,
            "state": {"kind": kind, "error": error},
        }
    )


def counts(*jobs: tuple[str, str, ScheduledFunction | None], rows: Counter[str], ledger: str) -> Counter[str]:
    report, runs = _check.Report(), _check.read_action_ledger(ledger)
    for job_id, kind, job_row in jobs:
        _check.check_job(report, job_id, kind, job_row, rows[job_id], runs.get(job_id))
    _check.check_unknown(report, {job_id for job_id, _, _ in jobs}, rows, runs)
    return report.counts


def test_a_mutation_with_two_ledger_rows_is_doubled_and_one_with_none_is_lost() -> None:
    found = counts(
        ("m1", "now", row("m1", "ledger.write", "success")),
        ("m2", "now", row("m2", "ledger.write", "success")),
        rows=Counter(m1=2),
        ledger="",
    )
    assert found["mutations_doubled"] == 1 and found["lost"] == 1


def test_an_action_started_twice_is_doubled() -> None:
    ledger = "start a1 10 1.0\nstart a1 11 2.0\ndone a1 11 3.0\n"
    found = counts(("a1", "now_action", row("a1", "ledger.act", "success")), rows=Counter(), ledger=ledger)
    assert found["actions_doubled"] == 1


def test_a_successful_action_without_its_run_is_lost_and_a_failed_one_is_classified() -> None:
    ledger = "start a2 10 1.0\n"
    found = counts(
        ("a1", "now_action", row("a1", "ledger.act", "success")),
        ("a2", "now_action", row("a2", "ledger.act", "failed", "its worker stopped responding")),
        rows=Counter(),
        ledger=ledger,
    )
    assert found["lost"] == 1 and found["actions_failed.killed_mid_run"] == 1


def test_a_canceled_job_that_ran_and_a_job_still_pending_are_caught() -> None:
    found = counts(
        ("c1", "canceled", row("c1", "ledger.write", "canceled")),
        ("p1", "delayed_mutation", row("p1", "ledger.write", "pending")),
        ("gone", "now_mutation", None),
        rows=Counter(c1=1),
        ledger="",
    )
    assert found["canceled_ran"] == 1 and found["lost"] == 2


def test_a_run_of_no_known_job_is_unknown() -> None:
    found = counts(("m1", "now", row("m1", "ledger.write", "success")), rows=Counter(m1=1, stray=1), ledger="")
    assert found["unknown_runs"] == 1


def test_overlapping_capped_runs_over_the_bound_are_counted() -> None:
    # c1 and c2 overlap; c3 is cut short: its worker died at 4.0; c4 was interrupted at 5.5.
    ledger = _check.read_action_ledger(
        "start c1 10 1.0\nstart c2 11 1.5\ndone c1 10 2.0\ndone c2 11 2.5\nstart c3 12 3.0\n"
        "start c4 11 5.0\ncut c4 11 5.5\n"
    )
    jobs = ["c1", "c2", "c3", "c4"]
    rows: dict[str, ScheduledFunction | None] = {j: row(j, "capped.hold", "success") for j in jobs}
    spans = _check.intervals(jobs, ledger, rows, killed={12: 4.0, 11: 9.0})
    assert spans[2:] == [(3.0, 4.0), (5.0, 5.5)]
    assert _check.cap_exceeded(spans, bound=1) == (1, 2)
    assert _check.cap_exceeded(spans, bound=2) == (0, 2)


def test_a_job_canceled_before_it_was_due_that_did_not_end_canceled_is_caught() -> None:
    report = _check.Report()
    job = row("c1", "ledger.write", "success").model_copy(update={"scheduled_time": 10_000})
    _check.check_cancel(report, "c1", job, canceled_at=5.0)
    _check.check_cancel(report, "c1", job, canceled_at=20.0)  # canceled once it was due: it may have run
    assert report.counts["cancel_ignored"] == 1
