"""Per-procedure limits on Temporal's own means: a task queue of its own for each rate- or
concurrency-limited procedure, served by a worker beside every worker of the app.

* ``.rate_limit(per_second=x)``: the server's rate limit of that task queue (set through the
  task-queue config API, and as the side workers' own
  ``max_task_queue_activities_per_second``): at most x starts per second across every worker.
  With ``key=``, the queue's default rate limit per fairness key instead (the jobs' fairness
  key is the rate limit's key): at most x starts per second for each key value.
* ``.worker_concurrency(n)``: the side worker's ``max_concurrent_activities``: at most n running at
  once in each worker process. Temporal has no global concurrency cap; kitcn adds no
  semaphore or queue of its own.

Layer: capacity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit
from temporalio.api.workflowservice.v1 import UpdateTaskQueueConfigRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerConfig

from .._app import App
from .._wire import procedure_queue
from ..procedures._procedures import Procedure

logger = logging.getLogger("kitcn_temporal")
#: ``activity_for(app, name, procedure)``: the callable a worker registers as the procedure's activity.
ActivityFor = Callable[[App, str, Procedure], Callable[..., Any]]
_NO_GRACE = timedelta(0)
#: Shutdowns under way (a reference keeps each task alive until it is done).
_STOPPING: set[asyncio.Future[None]] = set()


class FlowControl:
    """The side workers of an app's limited procedures, and how to recognise their queues."""

    def __init__(self, app: App, activity_for: ActivityFor) -> None:
        self.app = app
        #: Builds a procedure's activity (the execution folder's, which sits above this one).
        self._activity_for = activity_for
        #: The procedures that run on a task queue of their own.
        self.limited: dict[str, Procedure] = {n: p for n, p in app.procedures.items() if p.own_queue}

    def side_procedure(self, task_queue: str | None) -> str | None:
        """The procedure whose own task queue ``task_queue`` is, if it is one."""
        main, sep, name = (task_queue or "").rpartition("@")
        return name if sep and main and name in self.limited else None

    def configure_side_worker(self, config: WorkerConfig, name: str) -> WorkerConfig:
        """A side worker runs its procedure's activity and nothing else, within its limits."""
        proc = self.limited[name]
        config["activities"] = [self._activity_for(self.app, name, proc)]
        config["workflows"] = []
        if proc.worker_concurrency is not None:
            config["max_concurrent_activities"] = proc.worker_concurrency
        if proc.rate_limit is not None and proc.rate_limit_key is None:
            config["max_task_queue_activities_per_second"] = proc.rate_limit
        return config

    async def run_beside(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Run ``worker`` with one side worker per limited procedure, stopped with it."""
        config = worker.config()
        queue = config["task_queue"]
        if not self.limited or self.side_procedure(queue) is not None:
            await next(worker)
            return
        client: Client = config["client"]
        sides = []
        for name, proc in self.limited.items():
            side = procedure_queue(queue, name)
            per_key = proc.rate_limit_key is not None
            if proc.rate_limit is not None:
                await _set_rate_limit(client, side, proc.rate_limit, per_key=per_key)
            sides.append(
                Worker(
                    client,
                    task_queue=side,
                    activities=[self._activity_for(self.app, name, proc)],
                    max_concurrent_activities=proc.worker_concurrency,
                    max_task_queue_activities_per_second=None if per_key else proc.rate_limit,
                    graceful_shutdown_timeout=config.get("graceful_shutdown_timeout") or _NO_GRACE,
                )
            )
        runs = [asyncio.create_task(side.run()) for side in sides]
        for run in runs:
            run.add_done_callback(lambda done: _stop_with(worker, done))
        try:
            await next(worker)
        finally:
            await asyncio.gather(*(side.shutdown() for side in sides))
            await asyncio.gather(*runs, return_exceptions=True)


def _stop_with(worker: Worker, run: asyncio.Task[None]) -> None:
    """A side worker that dies (e.g. of a fatal server error) takes its main worker down with it."""
    if not run.cancelled() and run.exception() is not None and not worker.is_shutdown:
        logger.error("a side worker stopped: %s; stopping the worker", run.exception())
        stopping = asyncio.ensure_future(worker.shutdown())
        _STOPPING.add(stopping)
        stopping.add_done_callback(_STOPPING.discard)


async def _set_rate_limit(client: Client, task_queue: str, per_second: float, *, per_key: bool) -> None:
    """The server's rate limit for activities of ``task_queue``, whatever its pollers say: the
    queue's, or (``per_key``) each fairness key's. The other one is removed (a deploy may have
    changed the declaration)."""
    rate = UpdateTaskQueueConfigRequest.RateLimitUpdate(
        rate_limit=RateLimit(requests_per_second=per_second), reason="kitcn .rate_limit()"
    )
    removed = UpdateTaskQueueConfigRequest.RateLimitUpdate(reason="kitcn .rate_limit()")
    try:
        await client.workflow_service.update_task_queue_config(
            UpdateTaskQueueConfigRequest(
                namespace=client.namespace,
                identity=client.identity,
                task_queue=task_queue,
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                update_queue_rate_limit=removed if per_key else rate,
                update_fairness_key_rate_limit_default=rate if per_key else removed,
            )
        )
    except RPCError as err:  # an older server: the side workers' own setting still holds
        logger.warning("could not set the rate limit of task queue %r on the server: %s", task_queue, err.message)
