"""The workflows: one per job (``kitcn.ScheduledFunction``) and one per direct call.

Deterministic code, replayed from history: it may only use ``temporalio.workflow``
and the plain data of ``_wire``. It runs outside Temporal's workflow sandbox: the
sandbox guards user workflow code, while these two small workflows are the library's
own, never run user code (procedures run in activities), and are held to determinism
by replay tests over recorded histories. Skipping the per-run sandbox set-up is about
a third of a worker's CPU per job.

Layer: execution: imports only the wire formats.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError,
    TimeoutType,
)

from ._wire import (
    CALL_WORKFLOW,
    JOB_WORKFLOW,
    MEMO_ARGS,
    MEMO_ERROR,
    SA_SCHEDULED_TIME,
    SA_STATE,
    TRANSIENT_ACTION_ERROR,
    CallSpec,
    ExecInput,
    ExecOptions,
    JobSpec,
    StateKind,
    datetime_to_ms,
)


@workflow.defn(name=JOB_WORKFLOW, sandboxed=False)
class ScheduledFunctionWorkflow:
    """One scheduled function: wait until due, run the procedure, record the outcome.

    The job's state lives in the ``KitcnState`` search attribute and agrees with
    Temporal's execution status: ``pending``/``inProgress`` while Running, then
    ``success`` (Completed), ``failed`` (Failed) or ``canceled`` (Canceled).
    """

    @workflow.run
    async def run(self, spec: JobSpec) -> Any:
        info = workflow.info()
        updates: list[SearchAttributeUpdate[Any]] = []
        scheduled = spec.scheduled_time
        if scheduled is None:  # a cron run: due when the schedule started it
            scheduled = datetime_to_ms(info.start_time)
            updates.append(SA_SCHEDULED_TIME.value_set(info.start_time))
        try:
            if spec.canceled:
                # Created canceled: the producer requests cancellation right after the start.
                await workflow.wait_condition(lambda: False)
            remaining = scheduled - datetime_to_ms(workflow.now())
            if remaining > 0:  # also reached when a cancel request wakes a delayed start
                await workflow.sleep(timedelta(milliseconds=remaining))
            if workflow.cancellation_reason() is not None:
                raise asyncio.CancelledError()
        except asyncio.CancelledError:
            if not spec.canceled:
                _record("canceled", updates)
            raise

        if spec.options.kind == "action":
            updates.append(SA_STATE.value_set("inProgress"))
        if updates:
            workflow.upsert_search_attributes(updates)
        args: dict[str, Any] = workflow.memo_value(MEMO_ARGS, {}, type_hint=dict)
        inp = ExecInput(
            args=args,
            exec_id=info.workflow_id,
            job_id=info.workflow_id,
            scheduled_time=scheduled,
        )
        handle = _start(spec.name, spec.options, inp)
        cancel_requested = False
        while True:
            try:
                # A cancel request does not stop a running procedure: its outcome is recorded.
                result = await asyncio.shield(handle)
                break
            except asyncio.CancelledError:
                if cancel_requested:
                    raise
                cancel_requested = True
                if spec.options.kind == "action":
                    # Tells the running action (it keeps running; what it schedules from now
                    # on is created canceled). WAIT_CANCELLATION_COMPLETED keeps its outcome.
                    handle.cancel()
            except FailureError as err:  # local activities fail without an ActivityError wrapper
                failure = _failure(spec.name, spec.options, err)
                _record("failed", [], failure.message)
                raise failure from None
        _record("success", [])
        return result


@workflow.defn(name=CALL_WORKFLOW, sandboxed=False)
class CallWorkflow:
    """A direct call from a KitcnClient, run on a worker so that it has a procedure context."""

    @workflow.run
    async def run(self, spec: CallSpec) -> Any:
        call_id = workflow.info().workflow_id
        inp = ExecInput(args=spec.args, exec_id=call_id, auth=spec.auth)
        try:
            return await _start(spec.name, spec.options, inp)
        except FailureError as err:
            raise _failure(spec.name, spec.options, err) from None


def _start(name: str, options: ExecOptions, inp: ExecInput) -> workflow.ActivityHandle[Any]:
    timeout = timedelta(milliseconds=options.timeout_ms)
    retry = options.retry.to_policy()
    if options.kind == "action":
        return workflow.start_activity(
            name,
            inp,
            start_to_close_timeout=timeout,
            heartbeat_timeout=None if options.heartbeat_ms is None else timedelta(milliseconds=options.heartbeat_ms),
            retry_policy=retry,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    # Queries and mutations are short: a local activity saves the task-queue round trip
    # and most of the history events, and is retried by the worker with the same policy.
    return workflow.start_local_activity(name, inp, start_to_close_timeout=timeout, retry_policy=retry)


#: The failure type the SDK reports for an activity its stopping worker cut off.
_WORKER_SHUTDOWN = "WorkerShutdown"


def _failure(name: str, options: ExecOptions, err: FailureError) -> ApplicationError:
    """The job's failure: the procedure's own error, or why the procedure could not finish."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type == _WORKER_SHUTDOWN and options.kind == "action":
        message = f"{TRANSIENT_ACTION_ERROR} {name}: its worker shut down before it finished"
        return ApplicationError(message, type="KitcnJobError", non_retryable=True)
    if isinstance(cause, ApplicationError):
        return ApplicationError(
            cause.message,
            *cause.details,
            type=cause.type,
            non_retryable=True,
            category=cause.category,
        )
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
        message = f"{TRANSIENT_ACTION_ERROR} {name}: its worker stopped responding"
    elif isinstance(cause, TimeoutError):
        message = f"{name} timed out after {options.timeout_ms / 1000:g}s"
        if options.kind == "action":
            message = f"{TRANSIENT_ACTION_ERROR} {name}: {message}"
    else:
        message = f"{name} failed: {cause or err}"
    return ApplicationError(message, type="KitcnJobError", non_retryable=True)


def _record(state: StateKind, updates: list[SearchAttributeUpdate[Any]], error: str | None = None) -> None:
    workflow.upsert_search_attributes([*updates, SA_STATE.value_set(state)])
    if error is not None:
        workflow.upsert_memo({MEMO_ERROR: error})
