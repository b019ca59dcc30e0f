"""The hand-tuned baseline: what a temporalio expert writes for one scheduled function that the
status table and the UI can find, with every cheap trick kitcn itself uses.

* the workflow runs outside the sandbox (``sandboxed=False``);
* the function runs as one *local* activity, inside the first workflow task;
* the start asks for eager execution (``request_eager_start=True``): a worker in the starting
  process takes the first workflow task from the start response, no poll round trip;
* the start carries the three search attributes of a kitcn job (``KitcnFunction``,
  ``KitcnState``, ``KitcnScheduledTime``) and its arguments in a memo, and the workflow sets
  ``KitcnState`` to ``success`` at the end, as kitcn does, so the record says the same thing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.raw import RETRY
from kitcn_temporal._wire import SA_FUNCTION, SA_SCHEDULED_TIME, SA_STATE

FUNCTION = "tuned.noop"


@activity.defn(name=FUNCTION)
async def tuned_noop(n: int) -> int:
    return n


@workflow.defn(name="tuned.Job", sandboxed=False)
class TunedJob:
    @workflow.run
    async def run(self, n: int) -> int:
        result = await workflow.execute_local_activity(
            tuned_noop, n, start_to_close_timeout=timedelta(minutes=1), retry_policy=RETRY
        )
        workflow.upsert_search_attributes([SA_STATE.value_set("success")])
        return result


async def start_tuned(client: Client, task_queue: str, n: int) -> WorkflowHandle[TunedJob, int]:
    """Start one tuned job, due now."""
    return await client.start_workflow(
        TunedJob.run,
        n,
        id=f"tuned-{uuid.uuid4()}",
        task_queue=task_queue,
        request_eager_start=True,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_FUNCTION, FUNCTION),
                SearchAttributePair(SA_STATE, "pending"),
                SearchAttributePair(SA_SCHEDULED_TIME, datetime.now(timezone.utc)),
            ]
        ),
        memo={"args": {"n": n}},
    )
