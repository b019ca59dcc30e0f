"""The Temporal side of jobs: start, cancel and describe ``kitcn.ScheduledFunction`` workflows.

Layer: jobs: knows workflows and ids, not procedures or apps.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta, timezone
from typing import Any

import pydantic_core
from temporalio.api.batch.v1 import BatchOperationCancellation
from temporalio.api.enums.v1 import BatchOperationState, EventType
from temporalio.api.workflowservice.v1 import DescribeBatchOperationRequest, StartBatchOperationRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .._errors import CRPCError
from .._wire import (
    DEBOUNCE_CONFLICT_ERROR,
    DEBOUNCE_PUSH,
    DEBOUNCE_WORKFLOW,
    JOB_WORKFLOW,
    MEMO_ARGS,
    MEMO_ARGS_LIMIT,
    MEMO_DEBOUNCE_FUNCTION,
    MEMO_DEBOUNCE_PENDING,
    MEMO_SPEC,
    SA_FUNCTION,
    SA_SCHEDULED_TIME,
    SA_STATE,
    NewJob,
    datetime_to_ms,
    debounce_holder_id,
    ms_to_datetime,
    now_ms,
    without_defaults,
)
from ..ops._encryption import decrypting
from ..ops._metrics import count_started_by_client
from ..procedures._names import check_job_id

#: The detail Temporal attaches to a ``NOT_FOUND`` about the namespace rather than a workflow.
_NAMESPACE_NOT_FOUND = "temporal.api.errordetails.v1.NamespaceNotFoundFailure"


#: How often a debounced call is sent again when its key's holder closed as the call reached it.
_PUSH_TRIES = 5


def namespace_missing(err: RPCError) -> bool:
    """Whether Temporal refused ``err``'s request because its namespace does not exist."""
    details = err.grpc_status.details if err.status == RPCStatusCode.NOT_FOUND else []
    return any(d.type_url.endswith(_NAMESPACE_NOT_FOUND) for d in details)


class Jobs:
    """Starts, cancels and describes the job workflows of one namespace.

    :param task_queue: where started jobs run; only :meth:`start` needs it (reading and
        cancelling a job goes by its id alone).
    """

    def __init__(self, client: Client, task_queue: str | None = None) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, job: NewJob) -> bool:
        """Start ``job``'s workflow; ``False`` if a workflow with its id already exists.

        Job ids are never reused, so a retried producer that re-starts the same id
        starts nothing twice. A keyed job whose id exists must be the same job (function
        and arguments), else ``CRPCError(CONFLICT)``.
        """
        if self.task_queue is None:
            raise ValueError("Jobs(client) without a task_queue cannot start jobs")
        delay = job.scheduled_time - now_ms()
        size = job.args_bytes if job.args_bytes >= 0 else len(pydantic_core.to_json(job.args))
        spec = job.spec()
        memo: dict[str, Any] = {MEMO_SPEC: without_defaults(spec)}
        if size <= MEMO_ARGS_LIMIT:
            memo[MEMO_ARGS] = job.args
        try:
            handle = await self.client.start_workflow(
                JOB_WORKFLOW,
                # The arguments alone: what the Temporal UI shows as the job's Input.
                job.args,
                id=job.id,
                task_queue=self.task_queue,
                memo=memo,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_FUNCTION, job.name),
                        SearchAttributePair(SA_STATE, "canceled" if job.canceled else "pending"),
                        SearchAttributePair(SA_SCHEDULED_TIME, ms_to_datetime(job.scheduled_time)),
                    ]
                ),
                static_summary=job.summary(),
                # Temporal's durable delayed start: no workflow task runs until the job is due
                # (a cancel request wakes it early to record ``canceled``).
                start_delay=timedelta(milliseconds=delay) if delay > 0 and not job.canceled else None,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                # A job due now goes straight to a worker sharing this client (an activity
                # scheduling follow-up jobs, or an in-process producer): no matching round trip.
                request_eager_start=delay <= 0 and not job.canceled,
                # Task priority, then fairness between keys (tenants); its activities inherit it.
                priority=spec.priority_of(),
            )
        except WorkflowAlreadyStartedError:
            if job.key is not None:
                await self.check_same_job(job, started=True)
            if job.canceled:  # an earlier attempt may have started it without canceling it
                await self._request_cancel(job.id)
            return False
        if job.canceled:
            await handle.cancel()
        config = self.client.service_client.config
        count_started_by_client(config.runtime, job.name, self.client.namespace, self.task_queue)
        return True

    async def push_debounced(self, job: NewJob) -> str:
        """Give a debounced call to its key's holder (update-with-start on ``debounce:<key>``):
        the key's pending job takes its arguments and due time, or ``job`` starts. Returns the
        id of the job that will run them.

        The holder closes once its job went; a call that reaches it as it closes is sent again.
        """
        if self.task_queue is None:
            raise ValueError("Jobs(client) without a task_queue cannot start jobs")
        debounce = job.debounce
        assert debounce is not None
        call = {
            "id": job.id,
            "key": debounce.key,
            "name": job.name,
            "args": job.args,
            "spec": without_defaults(job.spec()),
            "call_ms": debounce.call_ms,
            "period_ms": debounce.period_ms,
            "max_wait_ms": debounce.max_wait_ms,
        }
        for attempt in range(_PUSH_TRIES):
            holder: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                DEBOUNCE_WORKFLOW,
                id=debounce_holder_id(debounce.key),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # Holders are not jobs: the key's next holder reuses the id.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"debounce {debounce.key}",
            )
            try:
                job_id = await self.client.execute_update_with_start_workflow(
                    DEBOUNCE_PUSH, call, start_workflow_operation=holder, result_type=str
                )
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type == DEBOUNCE_CONFLICT_ERROR:
                    raise CRPCError("BAD_REQUEST", cause.message) from None
                raise
            except RPCError as err:  # the holder closed as the call reached it: a new one takes it
                if err.status != RPCStatusCode.NOT_FOUND or attempt == _PUSH_TRIES - 1:
                    raise
                continue
            return str(job_id)  # a job it starts is counted by the holder (kitcn_jobs_scheduled_total)
        raise AssertionError("unreachable")

    async def debounce_pending(self, key: str) -> tuple[str, str] | None:
        """The pending job of debounce key ``key`` and its function, if it has one (strongly consistent)."""
        try:
            desc = await self.client.get_workflow_handle(debounce_holder_id(key)).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and not namespace_missing(err):
                return None
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        memo = await desc.memo()
        pending, name = memo.get(MEMO_DEBOUNCE_PENDING), memo.get(MEMO_DEBOUNCE_FUNCTION)
        return (pending, name) if isinstance(pending, str) and isinstance(name, str) else None

    async def check_same_job(self, job: NewJob, *, started: bool = False) -> None:
        """``CRPCError(CONFLICT)`` unless the job under ``job.id``, if there is one, runs the same
        function with the same arguments (what an idempotency key promises).

        :param started: a workflow with this id is known to exist (its start was refused).
        """
        desc = await self.describe(job.id)
        if desc is None:
            if not started:
                return
            raise CRPCError(
                "CONFLICT",
                f"key {job.key!r} is taken by a workflow that is not a job: choose another key",
            )
        name = desc.typed_search_attributes.get(SA_FUNCTION)
        if name != job.name:
            raise CRPCError(
                "CONFLICT",
                f"key {job.key!r} already names a job of {name} ({job.id}): one key, one function and arguments",
            )
        if await self.args_of(desc) != job.args:
            raise CRPCError(
                "CONFLICT",
                f"key {job.key!r} already names a job of {name} with other arguments ({job.id}): "
                "one key, one function and arguments",
            )

    async def args_of(self, execution: WorkflowExecution) -> dict[str, Any]:
        """A job's arguments: from its memo when small, else from its workflow's input."""
        with decrypting(f"job {execution.id}"):
            return await self._args_of(execution)

    async def _args_of(self, execution: WorkflowExecution) -> dict[str, Any]:
        memo = await execution.memo()
        if MEMO_ARGS in memo:
            args = memo[MEMO_ARGS]
            return args if isinstance(args, dict) else {}
        if MEMO_SPEC not in memo:  # started by an older version: its input was the spec
            return {}
        async for event in self.client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            if payloads:
                (args,) = await self.client.data_converter.decode(payloads[:1])
                return args if isinstance(args, dict) else {}
            break
        return {}

    async def describe(self, job_id: str) -> WorkflowExecutionDescription | None:
        """The job's workflow description, or ``None`` if no job has this id.

        A namespace that does not exist is not an empty one: its ``RPCError`` is raised.
        """
        check_job_id(job_id)
        try:
            desc = await self.client.get_workflow_handle(job_id).describe()
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT) and not namespace_missing(err):
                return None
            raise
        return desc if desc.workflow_type == JOB_WORKFLOW else None

    async def require(self, job_id: str) -> WorkflowExecutionDescription:
        """Like :meth:`describe`, but ``CRPCError(NOT_FOUND)`` for an unknown id."""
        desc = await self.describe(job_id)
        if desc is None:
            raise CRPCError("NOT_FOUND", f"no scheduled function has id {job_id!r}")
        return desc

    async def cancel(self, job_id: str) -> None:
        """Cancel a job: pending -> canceled; running -> keeps running; finished -> no-op."""
        desc = await self.require(job_id)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            await self._request_cancel(job_id)

    async def cancel_matching(self, query: str, reason: str, *, timeout: float = 120.0) -> int:
        """Request the cancellation of every workflow ``query`` matches, as one Temporal batch
        operation; returns how many the batch canceled (its ``complete_operation_count``).

        The batch reads Temporal's visibility store, which lags writes by about a second. A
        namespace runs a limited number of batches at once: a refused start is tried again
        until ``timeout`` seconds have passed.
        """
        service, namespace = self.client.workflow_service, self.client.namespace
        batch_id = f"kitcn-cancel-{uuid.uuid4()}"
        request = StartBatchOperationRequest(
            namespace=namespace,
            job_id=batch_id,
            reason=reason,
            visibility_query=query,
            cancellation_operation=BatchOperationCancellation(identity=self.client.identity),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await service.start_batch_operation(request)
                break
            except RPCError as err:  # another batch is running in the namespace
                if err.status != RPCStatusCode.RESOURCE_EXHAUSTED or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        describe = DescribeBatchOperationRequest(namespace=namespace, job_id=batch_id)
        while True:
            batch = await service.describe_batch_operation(describe)
            if batch.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED:
                return int(batch.complete_operation_count)
            if batch.state == BatchOperationState.BATCH_OPERATION_STATE_FAILED:
                raise CRPCError("INTERNAL_SERVER_ERROR", f"Temporal's batch {batch_id} failed: {batch.reason}")
            if loop.time() > deadline:
                raise CRPCError(
                    "INTERNAL_SERVER_ERROR",
                    f"Temporal's batch {batch_id} has not finished in {timeout:g}s "
                    f"({batch.complete_operation_count} of {batch.total_operation_count} done): it goes on",
                )
            await asyncio.sleep(0.2)

    async def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel this job (strongly consistent)."""
        desc = await self.describe(job_id)
        return bool(desc and desc.raw_description.workflow_extended_info.cancel_requested)

    async def canceled_before_it_ran(self, desc: WorkflowExecutionDescription) -> int | None:
        """When a cancel request reached the described job before any of its workflow tasks had
        started (in ms), or ``None``.

        Such a job has not run and never will: its first task carries the request, and the job
        workflow then records ``canceled`` without starting its procedure. A request that came
        later may have found the procedure started (a running action, a mutation committing).
        Temporal records the request in the history at once when no task is running; it is
        read only for a running job whose description says a cancel was requested.
        """
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        if not desc.raw_description.workflow_extended_info.cancel_requested:
            return None
        handle = self.client.get_workflow_handle(desc.id, run_id=desc.run_id)
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                return None
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
                return datetime_to_ms(event.event_time.ToDatetime(tzinfo=timezone.utc))
        return None

    async def _request_cancel(self, job_id: str) -> None:
        try:
            await self.client.get_workflow_handle(job_id).cancel()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # finished meanwhile: nothing to cancel
                raise
