"""What a fleet-wide cap costs: a zero-work action capped at 8 against the same action uncapped.

Side by side in rounds (:class:`bench.measure.Rounds`): completed jobs per second of each, the
history events of one job of each, and the gate's own events per capped job (summed over the
gate's runs: it continues as new).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from bench import measure
from kitcn_temporal import KitcnClient
from kitcn_temporal._wire import gate_id


async def history_events(client: Client, workflow_id: str) -> int:
    """Events of every run of ``workflow_id`` (a gate continues as new)."""
    total = 0
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        total += len([e async for e in handle.fetch_history_events()])
    return total


async def figures(kitcn: KitcnClient, n: int, repeats: int) -> dict[str, Any]:
    await measure.e2e_kitcn(kitcn, 5, "work.noop_action")  # warm up both paths (and start the gate)
    await measure.e2e_kitcn(kitcn, 5, "work.capped_action")
    rounds = await measure.Rounds.measure(
        repeats,
        {
            "uncapped": lambda: measure.e2e_kitcn(kitcn, n, "work.noop_action"),
            "capped": lambda: measure.e2e_kitcn(kitcn, n, "work.capped_action"),
        },
    )
    results: dict[str, Any] = {
        "jobs_per_s_action_uncapped": rounds.rate("uncapped"),
        "jobs_per_s_action_capped_8": rounds.rate("capped"),
        "ratio_capped": rounds.ratio("capped", "uncapped"),
    }
    plain = await kitcn.scheduler.run_after(0, "work.noop_action", {"n": 1})
    capped = await kitcn.scheduler.run_after(0, "work.capped_action", {"n": 1})
    for job in (plain, capped):
        await kitcn.client.get_workflow_handle(job).result()
    uncapped_events = await measure.events_per_job(kitcn.client, plain)
    capped_events = await measure.events_per_job(kitcn.client, capped)
    results["events_per_job_action_uncapped"] = uncapped_events
    results["extra_events_per_capped_job"] = capped_events - uncapped_events
    gate = await history_events(kitcn.client, gate_id("work.capped_action", kitcn.task_queue))
    results["gate_events_per_capped_job"] = gate / (repeats * n + 6)
    return results
