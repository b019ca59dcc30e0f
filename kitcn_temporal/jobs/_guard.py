"""The commit guard workflow (``kitcn.CommitGuard``): a direct mutation's durable promise.

A direct mutation that schedules runs in its caller's process; right before it commits, it
starts this workflow with Temporal's ``start_delay`` (workflow id = the call's execution
id), and deletes it once its jobs have started. If the process dies in between, the guard
wakes up after the delay and runs one local activity on a worker of the app, which starts
the jobs the call's record names, or, finding no record, leaves a tombstone so that the
call never commits (``_direct.recover_commit``).

Deterministic code, like the job workflow: it imports only the wire formats and runs
outside the sandbox (it never runs user code).

Layer: jobs.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from .._wire import GUARD_ACTIVITY, GUARD_WORKFLOW, RetrySpec

#: Time limit of one recovery attempt (a record names at most 1 000 jobs to start).
RECOVERY_TIMEOUT = timedelta(minutes=2)


@workflow.defn(name=GUARD_WORKFLOW, sandboxed=False)
class CommitGuardWorkflow:
    """Fired: start what the direct call committed, or settle that it never will commit."""

    @workflow.run
    async def run(self) -> int:
        """Returns how many jobs it started (0 when the call's own process had started them)."""
        started: int = await workflow.execute_local_activity(
            GUARD_ACTIVITY,
            workflow.info().workflow_id,
            start_to_close_timeout=RECOVERY_TIMEOUT,
            # A database or Temporal that is down is waited for, as a mutation job waits.
            retry_policy=RetrySpec().to_policy(),
        )
        return started
