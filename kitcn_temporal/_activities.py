"""One Temporal activity per procedure, its type the procedure name.

The activity builds the procedure's context, runs it (heartbeating for actions),
applies a mutation's schedules, and turns exceptions into Temporal failures that
say whether a retry could help.

Layer: execution: the Temporal activity around :func:`~kitcn_temporal._run.run_procedure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ._app import App
from ._context import JobInfo
from ._errors import CRPCError, exception_text
from ._jobs import Jobs
from ._procedures import Procedure
from ._run import is_transient, run_procedure, unit_mode_for
from ._unit import Unit
from ._wire import ExecInput


def procedure_activities(app: App) -> list[Callable[..., Any]]:
    """The activities that run ``app``'s procedures, one per procedure."""
    return [_activity_for(app, name, proc) for name, proc in app.procedures.items()]


def _activity_for(app: App, name: str, proc: Procedure) -> Callable[..., Any]:
    async def run(inp: ExecInput) -> Any:
        return await execute(app, name, proc, inp)

    run.__name__ = run.__qualname__ = name.replace(".", "__")
    return activity.defn(name=name)(run)


async def execute(app: App, name: str, proc: Procedure, inp: ExecInput) -> Any:
    """Run one procedure execution inside its activity."""
    info = activity.info()
    jobs = Jobs(activity.client(), info.task_queue)
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
    run = run_procedure(app, proc, name, unit, auth=inp.auth, job=job, args=inp.args)
    try:
        if proc.kind == "action":
            return await _keep_alive(run, unit, info.heartbeat_timeout)
        return await run
    except CRPCError as err:
        raise err.to_application_error() from None
    except Exception as err:
        raise _failure(app, proc, err) from None


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
