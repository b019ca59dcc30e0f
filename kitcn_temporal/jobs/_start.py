"""Starting a procedure's activity from a job's (or a direct call's) workflow.

Queries and mutations run as local activities, actions (and procedures on a task queue of
their own, or tried again on any worker after a deploy) as activities. Deterministic code.

Layer: jobs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from .._wire import ExecInput, ExecOptions, procedure_queue

#: Activity id prefix of a procedure tried again on any worker: never eagerly run by the worker
#: that scheduled it, which does not know the procedure (:class:`AnyWorkerInterceptor`).
ANY_WORKER_ACTIVITY = "any-worker-"


def start_procedure(
    name: str,
    options: ExecOptions,
    inp: ExecInput,
    *,
    remote: str | None = None,
    schedule_to_start: timedelta | None = None,
    priority: Priority = Priority.default,
) -> workflow.ActivityHandle[Any]:
    """Start the procedure's activity. Both kinds report their end after a cancel request.

    :param remote: an activity id: run the procedure (a query or mutation too) as an activity
        that any worker of the task queue may take, not this one at once (it does not know
        the procedure).
    :param schedule_to_start: the longest it may wait for a worker (a job's ``ttl``).
    :param priority: the job's priority and fairness (an activity inherits its workflow's; a
        rate limit per key needs the key on the activity of the procedure's own queue).
    """
    timeout = timedelta(milliseconds=options.timeout_ms)
    retry = options.retry.to_policy()
    wait = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    if options.kind == "action" or remote or options.own_queue:
        return workflow.start_activity(
            name,
            inp,
            activity_id=remote,
            # A rate-limited or concurrency-limited procedure has a task queue of its own.
            task_queue=procedure_queue(workflow.info().task_queue, name) if options.own_queue else None,
            start_to_close_timeout=timeout,
            heartbeat_timeout=None if options.heartbeat_ms is None else timedelta(milliseconds=options.heartbeat_ms),
            retry_policy=retry,
            cancellation_type=wait,
            schedule_to_start_timeout=schedule_to_start,
            priority=priority,
        )
    # Queries and mutations are short: a local activity saves the task-queue round trip
    # and most of the history events, and is retried by the worker with the same policy.
    # (It is never matched on a task queue: its job's workflow task was, with the job's fairness.)
    return workflow.start_local_activity(
        name,
        inp,
        start_to_close_timeout=timeout,
        retry_policy=retry,
        cancellation_type=wait,
        schedule_to_start_timeout=schedule_to_start,
    )


class AnyWorkerInterceptor(Interceptor):
    """Keeps a procedure tried again on any worker off the worker that scheduled it.

    A worker runs the activities its workflows schedule at once when it can (eager
    execution): the one that found the procedure unknown would take every retry.
    """

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _AnyWorkerInbound


class _AnyWorkerInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_AnyWorkerOutbound(outbound))


class _AnyWorkerOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity_id and input.activity_id.startswith(ANY_WORKER_ACTIVITY):
            input.disable_eager_execution = True
        return super().start_activity(input)
