"""A capped action: its ledger lines carry times, from which the checker counts overlaps.

``.concurrency(CAP)`` caps the runs across every worker (semantics §14): the checker holds
the runs to ``CAP`` across the fleet (with :data:`FLEET_WIDE` off, it would allow ``CAP`` per
worker, as ``.worker_concurrency`` does).
"""

from __future__ import annotations

from kitcn_temporal import ActionCtx, private_action

from .ledger import ActIn, run_and_record

CAP = 1
#: Whether ``.concurrency`` counts across every worker (SPEC §14) or per worker process.
FLEET_WIDE = True


@private_action.input(ActIn).concurrency(CAP).action
async def hold(ctx: ActionCtx, input: ActIn) -> str:
    return await run_and_record(ctx, input)
