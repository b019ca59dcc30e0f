"""``Unit``: one execution unit and what it schedules, buffered or immediate.

Layer: jobs: the SQL store (below) commits a unit's buffer with the mutation, through the
shape it needs of a unit; the scheduler fills it; the crons folder (above) applies its cron
changes, handed to :meth:`Unit.flush`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from .._errors import CRPCError
from .._wire import CronChange, Intent, NewJob
from ._handles import Jobs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from temporalio.client import Client

logger = logging.getLogger("kitcn_temporal")

#: Concurrent start requests when a mutation's buffered jobs are started.
_FLUSH_CONCURRENCY = 32
_JOB_ID_NAMESPACE = uuid.UUID("6f0d1a8e-4c1b-4c0e-9a57-2b1f6a9e7c31")

#: ``buffered``: a mutation; ``immediate``: an action or a client; ``none``: a query.
Mode = Literal["none", "buffered", "immediate"]
#: Applies a committed mutation's runtime cron change (the crons folder's ``apply_change``).
CronApplier = Callable[["Client", CronChange], Awaitable[None]]


class Unit:
    """One execution unit and what it schedules.

    ``buffered``: a mutation; schedules, cancels and runtime cron changes wait in
    :attr:`intents` until the mutation succeeds, then :meth:`flush` applies them, jobs under
    ids derived from the execution id, so a retried attempt re-creates the same ids and
    starts nothing twice (a cron change applied again changes nothing).
    ``immediate``: an action or a client; every call takes effect at once.
    ``none``: a query; scheduling is refused.
    """

    def __init__(
        self,
        mode: Mode,
        exec_id: str,
        jobs: Jobs,
        *,
        job_id: str | None = None,
        parent: Unit | None = None,
        in_process: bool = False,
    ) -> None:
        self.mode: Mode = mode
        self.exec_id = exec_id
        self.jobs = jobs
        #: The job this unit runs as (an action's own job, checked for cancel requests).
        self.job_id = job_id
        #: The action that started this unit in-process (its cancel request applies here too).
        self.parent = parent
        #: Its transient failures are retried in this process (a query or mutation called
        #: from an action or directly from a client), not by Temporal.
        self.in_process = in_process
        self.schedule_calls = 0
        self.args_bytes = 0
        self.intents: list[Intent] = []
        self.cancel_requested = False
        #: A mutation's handler has returned: its commit and its schedules must now finish,
        #: even if the job is canceled meanwhile.
        self.committing = False
        #: Set by the database store while a transaction is open for this unit.
        self.db: AsyncSession | None = None
        #: Awaited by the database store right before it commits a mutation that has intents
        #: (a direct call's commit guard is armed there).
        self.before_commit: Callable[[], Awaitable[None]] | None = None

    def reset(self) -> None:
        """Forget what a failed attempt buffered: the next attempt's schedule calls start over."""
        self.intents = []
        self.schedule_calls = 0
        self.args_bytes = 0
        self.committing = False

    async def is_cancel_requested(self) -> bool:
        """Whether the job running this unit was asked to cancel (then new jobs start canceled)."""
        if self.cancel_requested:
            return True
        if self.parent is not None:
            self.cancel_requested = await self.parent.is_cancel_requested()
        if not self.cancel_requested and self.job_id is not None:
            self.cancel_requested = await self.jobs.cancel_requested(self.job_id)
        return self.cancel_requested

    def next_job_id(self, name: str) -> str:
        """A new job's id: its function, then a unique part (the Temporal UI's list shows ids)."""
        if self.mode == "buffered":
            # The n-th schedule call of this execution: the same id on every attempt.
            return f"{name}-{uuid.uuid5(_JOB_ID_NAMESPACE, f'{self.exec_id}/{self.schedule_calls}')}"
        return f"{name}-{uuid.uuid4()}"

    async def _push(self, job: NewJob) -> bool:
        """A committed mutation's debounced call, given to its key's holder."""
        assert job.debounce is not None
        job_id = await self.jobs.push_debounced(job)
        told = job.debounce.told or job.id
        if job_id != told:  # the key's job started between the call and the commit
            logger.info("debounced %s: job %s had started, the call's arguments went to %s", job.name, told, job_id)
        return job_id == job.id

    async def flush(self, apply_cron: CronApplier) -> int:
        """Apply a succeeded mutation's schedules, cancels and cron changes (idempotent).

        ``apply_cron`` writes a cron change (the crons folder sits above this one).
        Returns how many jobs this call started (those an earlier flush started are skipped).
        """
        if not self.intents:
            return 0
        canceled = await self.is_cancel_requested() if self.parent else False
        buffered = {i.id for i in self.intents if isinstance(i, NewJob)}
        cancels = {i for i in self.intents if isinstance(i, str)}
        starts = [
            dataclasses.replace(j, canceled=True) if canceled or j.id in cancels else j
            for j in self.intents
            if isinstance(j, NewJob)
        ]
        limit = asyncio.Semaphore(_FLUSH_CONCURRENCY)

        async def start(job: NewJob) -> bool:
            async with limit:
                try:
                    if job.debounce is not None and not job.canceled:
                        return await self._push(job)
                    return await self.jobs.start(job)
                except CRPCError as err:
                    if job.key is None or err.code != "CONFLICT":
                        raise
                    # Checked free at the schedule call; taken since by other work. The mutation
                    # has committed: the key's job stands, this one is not started.
                    logger.warning("not starting %s: %s", job.name, err.message)
                    return False

        started = await asyncio.gather(*(start(j) for j in starts))
        for job_id in cancels - buffered:
            try:
                await self.jobs.cancel(job_id)
            except CRPCError as err:  # gone since the call checked it: nothing left to cancel
                if err.code != "NOT_FOUND":
                    raise
        # In order, the last change of each name winning (register then unregister: none).
        changes = {i.name: i for i in self.intents if isinstance(i, CronChange)}
        for change in changes.values():
            await apply_cron(self.jobs.client, change)
        self.intents.clear()
        return sum(started)
