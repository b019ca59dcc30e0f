"""The workflows: one per job (``kitcn.ScheduledFunction``) and one per direct call.

Deterministic code, replayed from history: it may only use ``temporalio.workflow``, the
plain data of ``_wire`` and the attempts of ``_attempts``. It runs outside Temporal's
workflow sandbox: the sandbox guards user workflow code, while these small workflows are
the library's own, never run user code (procedures run in activities), and are held to
determinism by replay tests over recorded histories. Skipping the per-run sandbox set-up
is about a third of a worker's CPU per job.

Layer: jobs.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError

from .._wire import (
    CALL_WORKFLOW,
    GRANT_SIGNAL,
    JOB_WORKFLOW,
    MEMO_ARGS,
    MEMO_SPEC,
    SA_SCHEDULED_TIME,
    CallSpec,
    ExecInput,
    JobSpec,
    SlotRequest,
    StateKind,
    completion,
    datetime_to_ms,
)
from ..ops._metrics import count_finished, count_scheduled, record_lateness
from ._attempts import Execution, Slot, job_failure, needs_slot, record_state, start_procedure

#: Set by Temporal on each run a schedule starts: the time the run was due (a backfilled run
#: starts later than that).
_SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=JOB_WORKFLOW, sandboxed=False)
class ScheduledFunctionWorkflow:
    """One scheduled function: wait until due, run the procedure, record the outcome, then
    run its completion callback if it has one.

    The job's state lives in the ``KitcnState`` search attribute and agrees with
    Temporal's execution status: ``pending``/``inProgress`` while Running, then
    ``success`` (Completed), ``failed`` (Failed) or ``canceled`` (Canceled). A job with
    ``on_complete`` records its state before its callback runs, and closes after it. A job of
    a capped or paused procedure waits, pending, for its gate's grant (``kitcn_grant``).
    """

    def __init__(self) -> None:
        self._slot = Slot()

    @workflow.signal(name=GRANT_SIGNAL)
    def _grant(self) -> None:
        self._slot.grant()

    @workflow.run
    async def run(self, input: dict[str, Any]) -> Any:
        info = workflow.info()
        packed: dict[str, Any] | None = workflow.memo_value(MEMO_SPEC, None, type_hint=dict)
        if packed is not None:  # the input is the job's arguments, the spec in the memo
            spec, args = JobSpec.from_dict(packed), input
        else:  # started by an older version: the input is the spec, the arguments in the memo
            spec, args = JobSpec.from_dict(input), workflow.memo_value(MEMO_ARGS, {}, type_hint=dict)
        updates: list[SearchAttributeUpdate[Any]] = []
        scheduled = spec.scheduled_time
        if scheduled is None:  # a cron run: due when the schedule meant it to start
            due = _cron_due_time(info)
            scheduled = datetime_to_ms(due)
            updates.append(SA_SCHEDULED_TIME.value_set(due))
            count_scheduled(workflow.metric_meter(), spec.name)  # metrics: Temporal's schedule started it
        try:
            if spec.canceled:
                # Created canceled: the producer requests cancellation right after the start.
                await workflow.wait_condition(lambda: False)
            remaining = scheduled - datetime_to_ms(workflow.now())
            if remaining > 0:  # also reached when a cancel request wakes a delayed start
                await workflow.sleep(timedelta(milliseconds=remaining))
            if workflow.cancellation_reason() is not None and spec.options.kind == "action":
                raise asyncio.CancelledError()  # no attempt of an action can have started
        except asyncio.CancelledError:
            if not spec.canceled:
                record_state("canceled", updates)
            _count_end(spec, "canceled")
            await _complete(spec, "canceled")
            raise
        _record_lateness(spec, scheduled)
        inp = ExecInput(args=args, exec_id=info.workflow_id, job_id=info.workflow_id, scheduled_time=scheduled)
        self._slot.configure(
            SlotRequest(spec.name, info.workflow_id, key=spec.concurrency_key, priority=spec.priority, due_ms=scheduled)
        )
        try:
            # A mutation canceled once due may have had an attempt on a worker since lost: the
            # cancel reaches it in the execution, which looks for a committed attempt.
            result = await Execution(spec.name, spec.options, inp, updates, self._slot).outcome()
        except asyncio.CancelledError:
            _count_end(spec, "canceled")
            await _complete(spec, "canceled")
            raise
        except ApplicationError as failure:  # the job failed, its state recorded
            _count_end(spec, "failed")
            await _complete(spec, "failed", error=failure.message)
            raise
        _count_end(spec, "success")
        await _complete(spec, "success", result=result)
        return result


# Metrics only: the job workflow's meter records nothing while a history replays, and issues
# no command.
def _record_lateness(spec: JobSpec, scheduled_ms: int) -> None:
    late_ms = datetime_to_ms(workflow.now()) - scheduled_ms
    record_lateness(workflow.metric_meter(), spec.name, late_ms / 1000)


def _count_end(spec: JobSpec, state: StateKind) -> None:
    count_finished(workflow.metric_meter(), spec.name, state)


def _cron_due_time(info: workflow.Info) -> datetime:
    due = info.typed_search_attributes.get(_SCHEDULED_START)
    return due if due is not None else info.start_time


async def _complete(spec: JobSpec, state: StateKind, *, error: str | None = None, result: Any = None) -> None:
    """Run the job's ``on_complete`` mutation once (its exec id is the job's), if it has one.

    It runs after the job's state is recorded and never changes it: a callback that fails
    for good is logged, and the job closes with its own outcome.
    """
    if spec.on_complete is None or spec.on_complete_options is None:
        return
    job_id = workflow.info().workflow_id
    inp = ExecInput(
        args=completion(job_id, spec.name, state, error, result), exec_id=f"{job_id}/on_complete", kind="mutation"
    )
    try:
        await start_procedure(spec.on_complete, spec.on_complete_options, inp)
    except FailureError as err:
        workflow.logger.warning(
            "on_complete %s of job %s failed: %s",
            spec.on_complete,
            job_id,
            job_failure(spec.on_complete, spec.on_complete_options, err).message,
        )


@workflow.defn(name=CALL_WORKFLOW, sandboxed=False)
class CallWorkflow:
    """A direct call from a KitcnClient, run on a worker so that it has a procedure context.

    A call of a capped procedure takes a slot of its gate first, as a job does.
    """

    def __init__(self) -> None:
        self._slot = Slot()

    @workflow.signal(name=GRANT_SIGNAL)
    def _grant(self) -> None:
        self._slot.grant()

    @workflow.run
    async def run(self, spec: CallSpec) -> Any:
        call_id = workflow.info().workflow_id
        inp = ExecInput(args=spec.args, exec_id=call_id, auth=spec.auth, kind=spec.options.kind)
        self._slot.configure(SlotRequest(spec.name, call_id, key=spec.concurrency_key))
        try:
            if spec.options.gated:
                await self._slot.acquire()
            while True:
                try:
                    return await start_procedure(spec.name, spec.options, replace(inp, slot=self._slot.passed))
                except FailureError as err:
                    if not needs_slot(err) or self._slot.passed:
                        raise job_failure(spec.name, spec.options, err) from None
                    await self._slot.acquire()  # capped since the call was made
        finally:
            await self._slot.release()
