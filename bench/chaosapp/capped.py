"""A capped action: its ledger lines carry times, from which the checker counts overlaps.

``.concurrency(CAP)`` caps each worker process today (semantics §10); fleet-wide caps
(SPEC §14) are on their way: when they land, set :data:`FLEET_WIDE` and the checker holds
the runs to ``CAP`` across the fleet instead of ``CAP`` per worker.
"""

from __future__ import annotations

from kitcn_temporal import ActionCtx, private_action

from .ledger import ActIn, run_and_record

CAP = 1
#: Whether ``.concurrency`` counts across every worker (SPEC §14) or per worker process.
FLEET_WIDE = False


@private_action.input(ActIn).concurrency(CAP).action
async def hold(ctx: ActionCtx, input: ActIn) -> str:
    return await run_and_record(ctx, input)
