"""After the deploy: ``removed`` is gone, ``old_name`` is ``new_name``, two procedures changed kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from kitcn_temporal import private_action, private_mutation
from testapp.ledger import append


class LedgerIn(BaseModel):
    ledger: str
    #: When given, the action waits until this file exists before it returns.
    release: str | None = None


@private_mutation.input(LedgerIn).mutation
async def new_name(ctx, input: LedgerIn) -> str:
    return append(input.ledger, "mutation new_name")


@private_action.input(LedgerIn).action
async def becomes_action(ctx, input: LedgerIn) -> str:
    """Was a mutation: it now runs at most once, however its worker ends."""
    line = append(input.ledger, "action becomes_action")
    while input.release is not None and not Path(input.release).exists():
        await asyncio.sleep(0.05)
    return line


@private_mutation.input(LedgerIn).mutation
async def becomes_mutation(ctx, input: LedgerIn) -> str:
    return append(input.ledger, "mutation becomes_mutation")
