"""The baseline: what a developer writes with plain temporalio for one scheduled function.

A workflow that runs one activity with the same retry policy the plugin gives a mutation.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10))


@activity.defn(name="raw.noop")
async def raw_noop(n: int) -> int:
    return n


@workflow.defn(name="raw.Job")
class RawJob:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            raw_noop, n, start_to_close_timeout=timedelta(minutes=1), retry_policy=RETRY
        )
