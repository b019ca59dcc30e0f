"""What travels between producers, the job workflow and the procedure activities.

Layer: wire formats and errors: plain dataclasses, constants and time helpers
only. The job workflow imports this module, so it must stay deterministic and free of I/O
(:func:`now_ms` is for producers and activities, never for workflow code).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args

from temporalio.common import RetryPolicy, SearchAttributeKey

#: Workflow type of a job: one workflow per scheduled function, workflow id = job id.
JOB_WORKFLOW = "kitcn.ScheduledFunction"
#: Workflow type of a direct action call made from a KitcnClient (never listed as a job).
CALL_WORKFLOW = "kitcn.Call"
#: Workflow type of a direct mutation's commit guard; its workflow id is the call's exec id.
GUARD_WORKFLOW = "kitcn.CommitGuard"
#: The local activity a commit guard runs when it fires: it starts what the call recorded.
GUARD_ACTIVITY = "kitcn.CommitGuard.recover"
#: Prefix of a direct call's execution id (and of its workflow id, when it has a workflow).
CALL_ID_PREFIX = "kitcn-call:"

SA_FUNCTION = SearchAttributeKey.for_keyword("KitcnFunction")
SA_STATE = SearchAttributeKey.for_keyword("KitcnState")
SA_SCHEDULED_TIME = SearchAttributeKey.for_datetime("KitcnScheduledTime")

#: Memo fields of a job: its arguments and, once failed, the error (its due time is the
#: ``KitcnScheduledTime`` search attribute).
MEMO_ARGS = "args"
MEMO_ERROR = "error"

Kind = Literal["query", "mutation", "action"]
StateKind = Literal["pending", "inProgress", "success", "failed", "canceled"]
#: Every state a job can be in, in the order a job moves through them.
STATE_KINDS: tuple[StateKind, ...] = get_args(StateKind)

#: The payload limit of Temporal's default server configuration (``limit.blobSize.error``).
PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
#: One job's encoded arguments must leave room for the rest of its start request.
MAX_JOB_ARGS_BYTES = PAYLOAD_LIMIT_BYTES - 16 * 1024

#: Prefix of the error recorded when an action's worker is lost (Convex's wording).
TRANSIENT_ACTION_ERROR = "transient error while executing action"


@dataclass(frozen=True)
class RetrySpec:
    """A Temporal retry policy in a form that survives serialisation."""

    initial_interval_ms: int = 500
    backoff_coefficient: float = 2.0
    maximum_interval_ms: int | None = 10_000
    maximum_attempts: int = 0
    non_retryable_error_types: tuple[str, ...] = ()

    @classmethod
    def from_policy(cls, policy: RetryPolicy) -> RetrySpec:
        return cls(
            initial_interval_ms=timedelta_to_ms(policy.initial_interval),
            backoff_coefficient=policy.backoff_coefficient,
            maximum_interval_ms=None if policy.maximum_interval is None else timedelta_to_ms(policy.maximum_interval),
            maximum_attempts=policy.maximum_attempts,
            non_retryable_error_types=tuple(policy.non_retryable_error_types or ()),
        )

    def to_policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(milliseconds=self.initial_interval_ms),
            backoff_coefficient=self.backoff_coefficient,
            maximum_interval=None
            if self.maximum_interval_ms is None
            else timedelta(milliseconds=self.maximum_interval_ms),
            maximum_attempts=self.maximum_attempts,
            non_retryable_error_types=list(self.non_retryable_error_types) or None,
        )


@dataclass(frozen=True)
class ExecOptions:
    """How the workflow runs a procedure's activity."""

    kind: Kind
    timeout_ms: int
    retry: RetrySpec = RetrySpec()
    #: Actions only: a worker lost mid-action fails the job after this long.
    heartbeat_ms: int | None = None


@dataclass(frozen=True)
class JobSpec:
    """Input of the job workflow. The job's arguments live in its memo."""

    name: str
    options: ExecOptions
    #: Due time in ms since the epoch; ``None`` means "when the workflow starts" (cron runs).
    scheduled_time: int | None
    #: Created canceled: the job records ``canceled`` and never runs.
    canceled: bool = False


@dataclass(frozen=True)
class CallSpec:
    """Input of a direct call's workflow."""

    name: str
    options: ExecOptions
    args: dict[str, Any]
    auth: Any = None


@dataclass(frozen=True)
class ExecInput:
    """Input of a procedure's activity."""

    args: dict[str, Any]
    #: The execution's key: the job id, or the direct call's workflow id.
    exec_id: str
    #: Set when the execution is a scheduled job.
    job_id: str | None = None
    scheduled_time: int | None = None
    auth: Any = None


@dataclass(frozen=True)
class NewJob:
    """A job about to be started: everything its workflow needs."""

    id: str
    name: str
    options: ExecOptions
    args: dict[str, Any]
    #: Due time, ms since the epoch.
    scheduled_time: int
    canceled: bool = False

    def summary(self) -> str:
        """The job's one-line summary in the Temporal UI: its function and when it runs."""
        when = ms_to_datetime(self.scheduled_time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{self.name} at {when} UTC" + (" (canceled)" if self.canceled else "")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ms() -> int:
    """The current time in ms since the epoch (producers and activities; not for workflows)."""
    return int(time.time() * 1000)


def ms_to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(t: datetime) -> int:
    """Exact, unlike ``timestamp() * 1000``: a due time read back is the one written.

    A naive datetime (as some SDK paths return) is taken as UTC.
    """
    return (t.replace(tzinfo=t.tzinfo or timezone.utc) - _EPOCH) // timedelta(milliseconds=1)


def without_defaults(value: Any) -> Any:
    """A dataclass as a dict that leaves out every field still at its default, recursively.

    What a job's start request carries: the workflow decodes it back into the dataclass,
    defaults filled in (a mutation's job input shrinks from ~300 to ~90 bytes).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: without_defaults(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.default is dataclasses.MISSING or getattr(value, f.name) != f.default
        }
    return value


def timedelta_to_ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)
