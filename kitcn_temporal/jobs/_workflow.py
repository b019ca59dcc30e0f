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
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError

from .._wire import (
    CALL_WORKFLOW,
    DEBOUNCE_CONFLICT_ERROR,
    DEBOUNCE_PUSH,
    DEBOUNCE_SIGNAL,
    DEBOUNCE_WORKFLOW,
    GRANT_SIGNAL,
    JOB_WORKFLOW,
    MEMO_ARGS,
    MEMO_DEBOUNCE_FUNCTION,
    MEMO_DEBOUNCE_PENDING,
    MEMO_SPEC,
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    CallSpec,
    ExecInput,
    JobSpec,
    SlotAnswer,
    SlotRequest,
    StateKind,
    completion,
    datetime_to_ms,
    job_summary,
    ms_to_datetime,
)
from ..capacity._passage import Slot
from ..ops._metrics import count_finished, count_scheduled, record_lateness
from ._attempts import Execution, job_deadline, job_failure, needs_slot, record_state
from ._start import start_procedure

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

    A debounced job waits for its key's holder (:class:`DebounceWorkflow`) instead of a timer:
    the holder sends it each new version of its arguments and due time, then ``go``.
    """

    def __init__(self) -> None:
        self._slot = Slot()
        #: A debounced job's latest arguments and due time, and whether its holder said ``go``.
        self._args: dict[str, Any] | None = None
        self._due: int | None = None
        self._go = False

    @workflow.signal(name=GRANT_SIGNAL)
    def _grant(self, answer: SlotAnswer) -> None:
        self._slot.answer(answer)

    @workflow.signal(name=DEBOUNCE_SIGNAL)
    def _debounced(self, change: dict[str, Any]) -> None:
        if self._go:  # a late copy of an earlier change: the job has its final version
            return
        self._args, self._due, self._go = change["args"], int(change["due"]), bool(change.get("go"))
        # The row shows the latest: the memo's arguments and the due-time search attribute.
        workflow.upsert_memo({MEMO_ARGS: self._args})
        workflow.upsert_search_attributes([SA_SCHEDULED_TIME.value_set(ms_to_datetime(self._due))])

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
            if spec.debounced:  # due when its holder says so, with the latest arguments
                await workflow.wait_condition(lambda: self._go)
                args, scheduled = self._args or {}, self._due or scheduled
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
        deadline = job_deadline(spec, scheduled)
        if deadline is None or workflow.now() < deadline:  # an expired job never starts
            _record_lateness(spec, scheduled)
        inp = ExecInput(args=args, exec_id=info.workflow_id, job_id=info.workflow_id, scheduled_time=scheduled)
        self._slot.configure(
            SlotRequest(
                spec.name,
                info.workflow_id,
                key=spec.concurrency_key,
                priority=spec.priority,
                fairness_key=spec.fairness_key,
                fairness_weight=spec.fairness_weight or 1.0,
                due_ms=scheduled,
            )
        )
        try:
            # A mutation canceled once due may have had an attempt on a worker since lost: the
            # cancel reaches it in the execution, which looks for a committed attempt. A job
            # with a ttl that has not started by its deadline expires there.
            result = await Execution(spec.name, spec.options, inp, updates, self._slot, spec).outcome()
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
    def _grant(self, answer: SlotAnswer) -> None:
        self._slot.answer(answer)

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


@workflow.defn(name=DEBOUNCE_WORKFLOW, sandboxed=False)
class DebounceWorkflow:
    """The holder of one debounce key (workflow id ``debounce:<key>``), while the key has a
    pending job: it takes each debounced call (an update, sent with update-with-start), keeps
    the latest arguments and the due time, re-arms its timer, and at the due time tells the
    job to run (``go``). A call after that starts the key's next job.

    The job is a job workflow like any other (its child, abandoned when the holder closes): the
    holder alone decides when it runs, so a call is never lost between "not started" and
    "started". The holder closes once its job went and no call waits; the next call starts it
    again.
    """

    def __init__(self) -> None:
        self._current: dict[str, Any] | None = None
        self._moved = False

    @workflow.run
    async def run(self, carried: dict[str, Any] | None = None) -> None:
        if carried is not None:  # continued as new (a first call's update may have run already)
            self._current = carried
        while True:
            job = self._current
            if job is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._current is None:
                    return  # nothing pending: the next call starts the holder again
                continue
            if not await self._due(job):
                continue
            self._current = None  # from here on, a call makes the key's next job
            workflow.upsert_memo({MEMO_DEBOUNCE_PENDING: None})
            await _tell(job, go=True)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._current)

    async def _due(self, job: dict[str, Any]) -> bool:
        """Wait until ``job`` is due; ``False`` if a call moved its due time (or it went) meanwhile."""
        if not job["started"]:  # its start is under way
            await workflow.wait_condition(lambda: job["started"] or self._current is not job)
            return False
        left = job["due"] - datetime_to_ms(workflow.now())
        if left <= 0:
            return True
        self._moved = False
        with contextlib.suppress(asyncio.TimeoutError):  # re-armed whenever a call moves the due time
            await workflow.wait_condition(
                lambda: self._moved or self._current is not job, timeout=timedelta(milliseconds=left)
            )
        return False

    @workflow.update(name=DEBOUNCE_PUSH)
    async def push(self, call: dict[str, Any]) -> str:
        """One debounced call: the key's pending job takes its arguments and due time, or a new
        job starts with them. Returns the job id."""
        job = self._current
        if job is not None:
            job["args"], job["due"] = call["args"], _due_time(call, job["first"], job["max_wait"])
            self._moved = True
            await workflow.wait_condition(lambda: job["started"])
            if self._current is job and not await _tell(job, go=False):
                self._current = None  # canceled meanwhile: the call starts the next job
            else:
                return str(job["id"])
        return await self._start(call)

    @push.validator
    def _check(self, call: dict[str, Any]) -> None:
        job = self._current
        if job is not None and job["name"] != call["name"]:
            raise ApplicationError(
                f"debounce key {call['key']!r} holds a pending job of {job['name']} ({job['id']}): "
                f"a key debounces one function, not {call['name']} too",
                type=DEBOUNCE_CONFLICT_ERROR,
            )

    async def _start(self, call: dict[str, Any]) -> str:
        first = int(call["call_ms"])
        job: dict[str, Any] = {
            "id": call["id"],
            "name": call["name"],
            "args": call["args"],
            "first": first,
            "max_wait": call.get("max_wait_ms"),
            "due": _due_time(call, first, call.get("max_wait_ms")),
            "started": False,
        }
        self._current = job
        spec = JobSpec.from_dict(call["spec"])
        try:
            child = await workflow.start_child_workflow(
                JOB_WORKFLOW,
                job["args"],
                id=job["id"],
                task_queue=workflow.info().task_queue,
                memo={MEMO_SPEC: {**call["spec"], "scheduled_time": job["due"]}, MEMO_ARGS: job["args"]},
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_FUNCTION, job["name"]),
                        SearchAttributePair(SA_STATE, "pending"),
                        SearchAttributePair(SA_SCHEDULED_TIME, ms_to_datetime(job["due"])),
                    ]
                ),
                static_summary=job_summary(job["name"], job["due"]),
                priority=spec.priority_of(),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:  # a retried mutation's call: its job exists already
            if self._current is job:
                self._current = None
            return str(job["id"])
        # Its outcome is the job's own (recorded in its row), not the holder's concern.
        child.add_done_callback(lambda done: done.cancelled() or done.exception())
        count_scheduled(workflow.metric_meter(), job["name"])
        job["started"] = True
        workflow.upsert_memo({MEMO_DEBOUNCE_PENDING: job["id"], MEMO_DEBOUNCE_FUNCTION: job["name"]})
        return str(job["id"])


def _due_time(call: dict[str, Any], first: int, max_wait: int | None) -> int:
    """``period`` after this call, never later than ``max_wait`` after the first."""
    due = int(call["call_ms"]) + int(call["period_ms"])
    return due if max_wait is None else min(due, first + int(max_wait))


async def _tell(job: dict[str, Any], *, go: bool) -> bool:
    """Send the job its latest arguments and due time (and ``go``); ``False`` if it has ended."""
    change = {"args": job["args"], "due": job["due"], "go": go}
    try:
        await workflow.get_external_workflow_handle(job["id"]).signal(DEBOUNCE_SIGNAL, change)
    except FailureError:  # canceled while pending: nothing to tell
        return False
    return True
