"""Direct calls from a ``KitcnClient`` that run in the caller's process: queries and mutations.

No workflow runs them. A query, or a mutation that scheduled nothing, costs no Temporal
call at all. A mutation's schedules still take effect exactly when it commits:

* without a database, its buffered jobs start right after the handler returns, in this
  process (a crash in between loses them, as it loses the handler's in-memory effects);
* with the SQL store, its record (output and intents with their job ids) commits with its
  writes. Right before that commit, a *commit guard* is armed: a ``kitcn.CommitGuard``
  workflow with Temporal's ``start_delay`` (``App(commit_guard_delay=...)``) whose workflow
  id is the call's execution id. After the commit this process starts the jobs (their ids
  derive from the execution id: ``REJECT_DUPLICATE`` makes a second start a no-op) and
  deletes the guard. If the process dies in between, the guard fires on a worker and
  :func:`recover_commit` starts the recorded jobs; finding no record, it leaves a tombstone,
  so that a commit still under way fails on the record's key instead of committing
  schedules nobody would start.

Layer: execution.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from .._app import App
from .._errors import CRPCError
from .._wire import CALL_ID_PREFIX, GUARD_ACTIVITY, GUARD_WORKFLOW
from ..crons._schedules import apply_change
from ..jobs._handles import Jobs
from ..jobs._unit import Unit
from ..procedures._codec import decode_output
from ..procedures._procedures import Procedure
from ._run import run_procedure, unit_mode_for

logger = logging.getLogger("kitcn_temporal")

#: TEST-ONLY. Awaited as ``hook(exec_id)`` right after a commit guard is armed, before the
#: mutation's record is written (the tests hold a commit there until its guard has fired).
GUARD_ARMED_TEST_HOOKS: list[Callable[[str], Awaitable[object]]] = []


async def call_here(app: App, proc: Procedure, name: str, jobs: Jobs, *, auth: Any, args: Any) -> Any:
    """Run query or mutation ``proc`` in this process, as a direct call; return its output.

    Errors reach the caller as they would from a worker: a ``CRPCError`` as raised, any
    other exception as ``CRPCError(INTERNAL_SERVER_ERROR)`` with its type and message.
    """
    unit = Unit(unit_mode_for(proc.kind), f"{CALL_ID_PREFIX}{uuid.uuid4()}", jobs, in_process=True)
    guard = None
    if proc.kind == "mutation" and app.store is not None:
        guard = CommitGuard(jobs, unit.exec_id, name, app.commit_guard_delay)
        unit.before_commit = guard.arm
    try:
        output = await run_procedure(app, proc, name, unit, auth=auth, job=None, args=args)
    except CRPCError:
        raise
    except Exception as err:
        raise CRPCError.from_exception(err) from err
    if guard is not None:
        await guard.release()
    return decode_output(proc, output)


class CommitGuard:
    """The ``kitcn.CommitGuard`` workflow of one direct mutation: armed before its commit,
    deleted once its jobs have started.

    :param jobs: where the guard runs (the task queue of the call's jobs).
    :param exec_id: the call's execution id, which is the guard's workflow id.
    """

    def __init__(self, jobs: Jobs, exec_id: str, name: str, delay: timedelta) -> None:
        self.jobs = jobs
        self.exec_id = exec_id
        self.name = name
        self.delay = delay
        self.armed = False

    async def arm(self) -> None:
        """Start the guard, due after the delay (idempotent: a retried attempt keeps the first)."""
        # Already started: an earlier attempt armed it (if it has fired since, its tombstone decides).
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.jobs.client.start_workflow(
                GUARD_WORKFLOW,
                id=self.exec_id,
                task_queue=self.jobs.task_queue or "",
                start_delay=self.delay,
                static_summary=f"commit guard of a direct call to {self.name}",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        self.armed = True
        for hook in GUARD_ARMED_TEST_HOOKS:
            await hook(self.exec_id)

    async def release(self) -> None:
        """Delete the guard: the jobs have started. Deleting (not terminating) leaves nothing
        in the namespace's workflow list; it costs the same one RPC (``bench/RESULTS.md``)."""
        if not self.armed:
            return
        client = self.jobs.client
        try:
            await client.workflow_service.delete_workflow_execution(
                DeleteWorkflowExecutionRequest(
                    namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=self.exec_id)
                )
            )
        except RPCError as err:
            # Harmless: the guard fires later, finds every job started, and starts nothing.
            logger.warning("could not delete the commit guard %s: %s", self.exec_id, err)


def guard_activities(app: App) -> list[Callable[..., Any]]:
    """The local activity a fired commit guard runs, on a worker of ``app``."""

    @activity.defn(name=GUARD_ACTIVITY)
    async def recover(exec_id: str) -> int:
        return await recover_commit(app, Jobs(activity.client(), activity.info().task_queue), exec_id)

    return [recover]


async def recover_commit(app: App, jobs: Jobs, exec_id: str) -> int:
    """Start the jobs direct call ``exec_id`` recorded; returns how many it started.

    No record: the call never committed, and a tombstone now makes sure it never will.
    """
    if app.store is None:
        # Retried (as any failure of a guard): a worker that has the database will take it.
        raise RuntimeError(
            f"the commit guard of direct call {exec_id} fired on a worker whose app has no "
            "database: give the workers the App(database=...) of the producers"
        )
    record = await app.store.abandon_unless_committed(exec_id)
    if record is None:
        logger.warning("direct call %s had not committed when its commit guard fired: it never will", exec_id)
        return 0
    unit = Unit("buffered", exec_id, jobs)
    unit.intents = list(record.intents)
    return await unit.flush(apply_change)
