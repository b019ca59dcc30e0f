"""Before the deploy. Every run appends ``<kind> <procedure> <pid>`` to the job's ledger file."""

from __future__ import annotations

from pydantic import BaseModel

from kitcn_temporal import private_action, private_mutation
from testapp.ledger import append


class LedgerIn(BaseModel):
    ledger: str
    #: Read by version 2's ``becomes_action`` only.
    release: str | None = None


@private_mutation.input(LedgerIn).mutation
async def removed(ctx, input: LedgerIn) -> str:
    """Gone in version 2."""
    return append(input.ledger, "mutation removed")


@private_mutation.input(LedgerIn).mutation
async def old_name(ctx, input: LedgerIn) -> str:
    """Renamed ``new_name`` in version 2."""
    return append(input.ledger, "mutation old_name")


@private_mutation.input(LedgerIn).mutation
async def becomes_action(ctx, input: LedgerIn) -> str:
    return append(input.ledger, "mutation becomes_action")


@private_action.input(LedgerIn).action
async def becomes_mutation(ctx, input: LedgerIn) -> str:
    return append(input.ledger, "action becomes_mutation")
