"""Which jobs belong to an env, and where each stands on the env's virtual timeline.

Every workflow the env's client starts passes through :class:`JobTracker` (a client
interceptor): the test's own calls, and the jobs procedures schedule (the worker runs on that
client, so activities start their jobs through it). So the env knows its jobs by id at once,
and checks them with ``describe`` (strongly consistent) rather than the visibility list.

Each workflow has its own clock, starting at wall-clock time. A job's *lag* is how far the
env's virtual timeline was ahead of the wall clock when the job was created: the env's offset
for a job the test scheduled; its creator's virtual time for a job a running job scheduled
(a job run at day 30 that schedules another in 5 s means day 30 + 5 s). The job's virtual
time is then its own clock plus its lag. The run a cron's schedule starts for a backfilled
time has lag 0: it is due at that (virtual) time on its own clock.

Layer: testing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import activity
from temporalio.client import (
    CreateScheduleInput,
    Interceptor,
    OutboundInterceptor,
    ScheduleHandle,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.common import TypedSearchAttributes

from .._wire import JOB_WORKFLOW, SA_FUNCTION
from ..crons._spec import SCHEDULE_ID_PREFIX
from ._clock import own_now

#: The note on a TestEnv's paused cron schedules.
PAUSED_NOTE = "kitcn_temporal.testing: runs come from env.advance() and env.trigger_cron()"

#: How long a job started by a cron run waits for ``trigger_cron`` to name that run.
_TRIGGER_WAIT = 10.0
#: How many creators back a job's function is looked for among theirs.
_ANCESTRY = 100


@dataclass(frozen=True)
class Recursion:
    """Jobs that keep scheduling new jobs: a function that scheduled itself."""

    #: The functions from a job to the job of the same function it led to (``[f, f]``: ``f``
    #: scheduled itself; ``[f, g, f]``: through ``g``).
    cycle: list[str]
    #: How many jobs of each function jobs started meanwhile.
    runs: Counter[str]

    def text(self) -> str:
        """``the jobs keep scheduling new jobs (recursive scheduling: ...)``, with their runs."""
        how = f"{self.cycle[0]} schedules itself" if len(self.cycle) == 2 else " schedules ".join(self.cycle)
        counts = ", ".join(f"{function} {count}" for function, count in self.runs.most_common(_NAMED_FUNCTIONS))
        more = f" and {len(self.runs) - _NAMED_FUNCTIONS} more functions" if len(self.runs) > _NAMED_FUNCTIONS else ""
        total = sum(self.runs.values())
        return (
            f"the jobs keep scheduling new jobs (recursive scheduling: {how}); "
            f"{total} run(s) scheduled by jobs while it waited: {counts}{more}"
        )


#: At most this many functions are named with their runs.
_NAMED_FUNCTIONS = 5


class JobTracker(Interceptor):
    """Records the workflows an env's client starts, with their lag (see the module docstring)."""

    def __init__(self) -> None:
        #: Every workflow started through the env's client (jobs, direct calls), by id.
        self.lags: dict[str, timedelta] = {}
        #: The env's jobs that may still be running (dict as an ordered set).
        self.live: dict[str, None] = {}
        #: How far the env's virtual time is ahead of the wall clock.
        self.offset = timedelta(0)
        #: The env's cron schedules (declared and registered at run time), each with the
        #: virtual time up to which its runs have been started.
        self.crons: dict[str, datetime] = {}
        #: Clear while ``trigger_cron`` is finding the run it started.
        self.triggers_named = asyncio.Event()
        self.triggers_named.set()
        #: The jobs started through the env's client, in order, each with its function.
        self.started: list[tuple[str, str | None]] = []
        #: The job that scheduled each job a procedure of a job scheduled.
        self.creators: dict[str, str] = {}

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self)

    def recursion(self, since: int) -> Recursion | None:
        """How the jobs started since ``started[since]`` schedule themselves, if a function
        scheduled itself, directly or through others (``None`` when none did)."""
        functions = dict(self.started)
        cycle: list[str] | None = None
        runs: Counter[str] = Counter()
        for job_id, function in self.started[since:]:
            if function is None or job_id not in self.creators:
                continue  # started by the test, not by a job
            runs[function] += 1
            if cycle is None:
                cycle = self._cycle(job_id, function, functions)
        return None if cycle is None else Recursion(cycle, runs)

    def _cycle(self, job_id: str, function: str, functions: dict[str, str | None]) -> list[str] | None:
        """The functions from an earlier job of ``function`` among ``job_id``'s creators to it."""
        chain = [function]
        creator = self.creators.get(job_id)
        for _ in range(_ANCESTRY):
            if creator is None:
                return None
            ancestor = functions.get(creator)
            if ancestor is None:
                return None
            chain.append(ancestor)
            if ancestor == function:
                return chain[::-1]
            creator = self.creators.get(creator)
        return None

    def track(self, job_id: str, lag: timedelta) -> None:
        """Count ``job_id`` among the env's jobs."""
        self.lags[job_id] = lag
        self.live[job_id] = None

    async def lag_of_new(self) -> timedelta:
        """The lag of a workflow being started now, by the test or by a running procedure."""
        if not activity.in_activity() or not activity.info().workflow_id:
            return self.offset
        creator = activity.info().workflow_id
        assert creator is not None
        lag = self.lags.get(creator)
        if lag is None and not self.triggers_named.is_set():  # perhaps the run trigger_cron started
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.triggers_named.wait(), _TRIGGER_WAIT)
            lag = self.lags.get(creator)
        # Unknown: the run of a cron's schedule, due at its backfilled time on its own clock.
        creator_now = own_now(await activity.client().get_workflow_handle(creator).describe())
        return creator_now + (lag or timedelta(0)) - datetime.now(timezone.utc)


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, tracker: JobTracker) -> None:
        super().__init__(next)
        self.tracker = tracker

    async def create_schedule(self, input: CreateScheduleInput) -> ScheduleHandle:
        """A cron's schedule (declared, or registered by a procedure) runs on virtual time:
        paused, its runs from then on started by ``advance`` and ``trigger_cron``."""
        handle = await super().create_schedule(input)
        if input.id.startswith(SCHEDULE_ID_PREFIX):
            self.tracker.crons[input.id] = datetime.now(timezone.utc) + await self.tracker.lag_of_new()
            await handle.pause(note=PAUSED_NOTE)
        return handle

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        tracker = self.tracker
        lag = await tracker.lag_of_new()
        known = input.id in tracker.lags
        # Recorded before the start: a job due now may run (and schedule more) before it returns.
        if input.workflow == JOB_WORKFLOW:
            tracker.track(input.id, lag)
            tracker.started.append((input.id, _function_of(input)))
            if activity.in_activity() and (creator := activity.info().workflow_id):
                tracker.creators[input.id] = creator
        else:
            tracker.lags[input.id] = lag
        try:
            return await super().start_workflow(input)
        except BaseException:
            if not known:  # nothing started under this id (or it was not ours)
                tracker.lags.pop(input.id, None)
                tracker.live.pop(input.id, None)
            raise


def _function_of(input: StartWorkflowInput) -> str | None:
    """The procedure of a job being started (its ``KitcnFunction``)."""
    attrs = input.search_attributes
    return attrs.get(SA_FUNCTION) if isinstance(attrs, TypedSearchAttributes) else None
