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

from .._wire import JOB_WORKFLOW
from ..crons._spec import SCHEDULE_ID_PREFIX
from ._clock import own_now

#: The note on a TestEnv's paused cron schedules.
PAUSED_NOTE = "kitcn_temporal.testing: runs come from env.advance() and env.trigger_cron()"

#: How long a job started by a cron run waits for ``trigger_cron`` to name that run.
_TRIGGER_WAIT = 10.0


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

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self)

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
        else:
            tracker.lags[input.id] = lag
        try:
            return await super().start_workflow(input)
        except BaseException:
            if not known:  # nothing started under this id (or it was not ours)
                tracker.lags.pop(input.id, None)
                tracker.live.pop(input.id, None)
            raise
