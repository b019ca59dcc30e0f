"""``work.hold``: capped at ``KITCN_TEST_CAP`` runs at once across the fleet (default 1)."""

from __future__ import annotations

import os

from kitcn_temporal import private_action
from testapp.capacity import HoldIn, hold

CAP = int(os.environ.get("KITCN_TEST_CAP", "1"))


@private_action.input(HoldIn).concurrency(CAP).action
async def hold_slot(ctx, input: HoldIn) -> None:
    await hold(input)
