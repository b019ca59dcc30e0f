"""Items: ``create_item`` notifies right after its mutation commits (``schedule.now``)."""

from __future__ import annotations

import sys

from pydantic import BaseModel, Field

from kitcn_temporal import ActionCtx, BaseCtx, Caller, CRPCError, KitcnClient, MutationCtx, QueryCtx, create_caller

from ._crpc import private_action, private_mutation, public_mutation, public_query
from .models import Item, new_id, now_ms


def items_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx``."""
    return create_caller(ctx, sys.modules[__name__])


class CreateItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class ItemIn(BaseModel):
    item_id: str


class ItemOut(BaseModel):
    id: str
    name: str
    created_at: int
    notified_at: int | None


@public_mutation.input(CreateItemIn).mutation
async def create_item(ctx: MutationCtx, input: CreateItemIn) -> str:
    """Create an item and notify about it once the mutation has committed; returns its id."""
    item = Item(id=new_id(), name=input.name)
    ctx.db.add(item)
    # The action runs as soon as this mutation commits (and never if it fails).
    await items_caller(ctx).schedule.now.send_notification(item_id=item.id)
    return item.id


@private_action.input(ItemIn).action
async def send_notification(ctx: ActionCtx, input: ItemIn) -> None:
    """Send the notification (an email or a webhook would go here), then record it."""
    item = await items_caller(ctx).get_item(item_id=input.item_id)
    if item is None:  # deleted before the job ran: nothing to announce
        return
    ctx.logger.info("new item: %s", item.name)
    await items_caller(ctx).mark_notified(item_id=input.item_id)


@private_mutation.input(ItemIn).mutation
async def mark_notified(ctx: MutationCtx, input: ItemIn) -> None:
    """Record that the item's notification went out."""
    item = await ctx.db.get(Item, input.item_id)
    if item is None:
        raise CRPCError("NOT_FOUND", f"item {input.item_id!r} not found")
    item.notified_at = now_ms()


@public_query.input(ItemIn).query
async def get_item(ctx: QueryCtx, input: ItemIn) -> ItemOut | None:
    """The item, or ``None``."""
    item = await ctx.db.get(Item, input.item_id)
    return None if item is None else ItemOut.model_validate(item, from_attributes=True)
