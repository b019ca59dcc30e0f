"""One Temporal activity per procedure, its type the procedure name.

The activity builds the procedure's context, runs it (heartbeating for actions),
applies a mutation's schedules, and turns exceptions into Temporal failures that
say whether a retry could help.

Layer: execution: the Temporal activity around :func:`~kitcn_temporal.execution._run.run_procedure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from .._app import App
from .._errors import CRPCError, exception_text
from .._wire import (
    CANCELED_ERROR,
    KIND_CHANGED_ERROR,
    NEEDS_SLOT_ERROR,
    NOT_COMMITTED_ERROR,
    UNKNOWN_PROCEDURE_ERROR,
    ExecInput,
    app_queue,
    timedelta_to_ms,
    without_defaults,
)
from ..capacity._slots import paused_before_start
from ..crons._schedules import apply_change
from ..jobs._handles import Jobs
from ..jobs._unit import Unit
from ..procedures._procedures import Procedure
from ._context import JobInfo
from ._run import is_transient, run_procedure, unit_mode_for


def procedure_activities(app: App) -> list[Callable[..., Any]]:
    """The activities that run ``app``'s procedures, one per procedure, and the one that
    answers for a procedure this worker does not know."""
    return [*(activity_for(app, name, proc) for name, proc in app.procedures.items()), _unknown_procedure(app)]


def _unknown_procedure(app: App) -> Callable[..., Any]:
    """A dynamic activity: a job whose procedure was removed or renamed reaches it, not a
    failed workflow task (which Temporal would retry without end)."""

    async def unknown_procedure(args: Sequence[RawValue]) -> NoReturn:
        info = activity.info()
        raise ApplicationError(
            f"no worker serving task queue {info.task_queue!r} knows procedure {info.activity_type!r}",
            {
                "procedure": info.activity_type,
                "task_queue": info.task_queue,
                "grace_ms": timedelta_to_ms(app.unknown_procedure_grace),
            },
            type=UNKNOWN_PROCEDURE_ERROR,
            non_retryable=True,
            # The job workflow acts on it (waits, tries other workers): no traceback in the log.
            category=ApplicationErrorCategory.BENIGN,
        )

    return activity.defn(dynamic=True)(unknown_procedure)


def activity_for(app: App, name: str, proc: Procedure) -> Callable[..., Any]:
    """The activity that runs procedure ``name``: its type is the procedure name."""

    async def run(inp: ExecInput) -> Any:
        return await execute(app, name, proc, inp)

    run.__name__ = run.__qualname__ = name.replace(".", "__")
    return activity.defn(name=name)(run)


async def execute(app: App, name: str, proc: Procedure, inp: ExecInput) -> Any:
    """Run one procedure execution inside its activity."""
    if inp.kind is not None and inp.kind != proc.kind:
        raise _kind_changed(app, name, proc, inp.kind)
    info = activity.info()
    jobs = Jobs(activity.client(), app_queue(info.task_queue, name))
    job = None
    if inp.job_id is not None:
        job = JobInfo(
            id=inp.job_id,
            name=name,
            attempt=info.attempt,
            scheduled_time=inp.scheduled_time or 0,
        )
    unit = Unit(
        unit_mode_for(proc.kind),
        inp.exec_id,
        jobs,
        job_id=inp.job_id if proc.kind == "action" else None,
    )
    if inp.recover_only:
        return await _recover(app, name, unit)
    if proc.kind != "action" and inp.job_id is not None and info.attempt > 1:
        await _refuse_if_canceled(jobs, inp.job_id, name)
    run = run_procedure(app, proc, name, unit, auth=inp.auth, job=job, args=inp.args)
    if not inp.slot and info.attempt == 1:  # inside the action's heartbeats: the check may take a while
        run = _after(_refuse_without_a_pass(app, name, proc, inp, jobs), run)
    try:
        if proc.kind == "action":
            return await _keep_alive(run, unit, info.heartbeat_timeout)
        return await _finish_once_committing(run, unit)
    except CRPCError as err:
        raise err.to_application_error() from None
    except Exception as err:
        raise _failure(app, proc, err) from None


def _kind_changed(app: App, name: str, proc: Procedure, scheduled: str) -> ApplicationError:
    """The refusal of a worker whose ``name`` is no longer the kind the job was scheduled as.

    It carries the procedure's current options: the job workflow runs it again under them
    (an action that used to be a mutation then runs at most once).
    """
    return ApplicationError(
        f"{name} was scheduled as a {scheduled} but is now a {proc.kind}",
        {"kind": proc.kind, "options": without_defaults(app.exec_options(proc))},
        type=KIND_CHANGED_ERROR,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


async def _refuse_without_a_pass(app: App, name: str, proc: Procedure, inp: ExecInput, jobs: Jobs) -> None:
    """A run that did not pass its procedure's gate does not start if it needs to: the
    procedure is capped across the fleet (since a deploy, if the job did not know), or it is a
    job of a paused procedure (a describe of the gate, at most once a second per procedure;
    a direct call is never paused)."""
    if proc.capped:
        reason = "it is capped across the fleet"
    elif inp.job_id is not None and await paused_before_start(jobs.client, jobs.task_queue or app.task_queue, name):
        reason = "it is paused"
    else:
        return
    raise ApplicationError(
        f"{name} needs a slot of its gate: {reason}",
        type=NEEDS_SLOT_ERROR,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


async def _after(check: Coroutine[Any, Any, None], run: Coroutine[Any, Any, Any]) -> Any:
    """``run`` once ``check`` has passed (``run`` is closed unstarted if it raises)."""
    try:
        await check
    except BaseException:
        run.close()
        raise
    return await run


async def _refuse_if_canceled(jobs: Jobs, job_id: str, name: str) -> None:
    """A retried mutation attempt of a canceled job does not run.

    The job's workflow hears of a cancel request only when its worker next reports (a
    mutation's retries run inside one workflow task): each retry asks Temporal itself.
    """
    if await jobs.cancel_requested(job_id):
        raise ApplicationError(
            f"{name} was not tried again: its job was canceled",
            type=CANCELED_ERROR,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


async def _recover(app: App, name: str, unit: Unit) -> Any:
    """A canceled mutation job's last word: the output of an attempt that committed, or none."""
    committed, output = (False, None) if app.store is None else await app.store.recover(unit)
    if not committed:
        raise ApplicationError(
            f"no attempt of {name} committed",
            type=NOT_COMMITTED_ERROR,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )
    await unit.flush(apply_change)
    return output


async def _finish_once_committing(run: Any, unit: Unit) -> Any:
    """Run a query or mutation; a cancel stops it, unless its handler already returned.

    A mutation job canceled while it retries gets no new attempt, and its running attempt is
    interrupted (its transaction rolls back) — but one that is committing finishes, so that
    a committed mutation always starts its jobs.
    """
    task = asyncio.ensure_future(run)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if unit.committing and not task.done():
            return await task
        task.cancel()
        raise


def _failure(app: App, proc: Procedure, err: Exception) -> ApplicationError:
    """A handler's exception as a Temporal failure, retryable only where a retry may help."""
    if isinstance(err, ApplicationError):
        return err
    # An action runs once unless it declared a retry policy (then every error retries);
    # queries and mutations retry transient faults only, anything else is a developer error.
    retryable = proc.retry_policy is not None if proc.kind == "action" else is_transient(app, proc, err)
    return ApplicationError(exception_text(err), type=type(err).__name__, non_retryable=not retryable)


async def _keep_alive(run: Any, unit: Unit, heartbeat_timeout: timedelta | None) -> Any:
    """Run an action, heartbeating so that a lost worker is noticed within the heartbeat timeout.

    A cancel request for the action's job does not stop it: it is recorded on the
    unit (what the action schedules from then on is created canceled) and the action
    runs to its end. Timeouts and worker shutdown still interrupt it.
    """
    task = asyncio.ensure_future(run)
    interval = (heartbeat_timeout.total_seconds() / 4) if heartbeat_timeout else 5.0

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    beater = asyncio.ensure_future(beat())
    try:
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                details = activity.cancellation_details()
                job_canceled = (
                    details is not None
                    and details.cancel_requested
                    and not (details.timed_out or details.worker_shutdown or details.not_found)
                )
                if task.done() or not job_canceled:
                    task.cancel()
                    raise
                unit.cancel_requested = True
    finally:
        beater.cancel()
