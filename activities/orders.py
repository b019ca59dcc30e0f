"""Orders: ``process_order`` marks an order ``processing`` and charges it 5 seconds later.

The guide's ``schedule.after(5000)``: the ``charge`` job is scheduled atomically with
the status change (if the mutation fails, nothing is scheduled).
"""

from __future__ import annotations

import sys

from pydantic import BaseModel, Field

from kitcn_temporal import ActionCtx, BaseCtx, Caller, CRPCError, KitcnClient, MutationCtx, QueryCtx, create_caller

from ._crpc import private_action, private_mutation, public_mutation, public_query
from .models import Order, new_id, now_ms

#: How long after ``process_order`` the charge runs (the guide's 5 seconds).
CHARGE_DELAY_MS = 5000


def orders_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx`` (kitcn's ``createOrdersCaller``)."""
    return create_caller(ctx, sys.modules[__name__])


class CreateOrderIn(BaseModel):
    customer: str = Field(min_length=1, max_length=200)
    amount_cents: int = Field(gt=0)


class OrderIn(BaseModel):
    order_id: str


class OrderOut(BaseModel):
    id: str
    customer: str
    amount_cents: int
    status: str
    charge_job_id: str | None
    paid_at: int | None


@public_mutation.input(CreateOrderIn).mutation
async def create_order(ctx: MutationCtx, input: CreateOrderIn) -> str:
    """Create a ``pending`` order; returns its id."""
    order = Order(id=new_id(), customer=input.customer, amount_cents=input.amount_cents)
    ctx.db.add(order)
    return order.id


@public_mutation.input(OrderIn).mutation
async def process_order(ctx: MutationCtx, input: OrderIn) -> str:
    """Mark a pending order ``processing`` and charge it in 5 s; returns the charge job id."""
    order = await ctx.db.get(Order, input.order_id)
    if order is None:
        raise CRPCError("NOT_FOUND", f"order {input.order_id!r} not found")
    if order.status != "pending":
        raise CRPCError("CONFLICT", f"order {order.id!r} is already {order.status}")
    order.status = "processing"
    # Run after 5 seconds.
    order.charge_job_id = await orders_caller(ctx).schedule.after(CHARGE_DELAY_MS).charge(order_id=order.id)
    return order.charge_job_id


@private_action.input(OrderIn).action
async def charge(ctx: ActionCtx, input: OrderIn) -> None:
    """Charge the customer (a payment provider would be called here), then record the payment."""
    ctx.logger.info("charging order %s", input.order_id)
    await orders_caller(ctx).mark_paid(order_id=input.order_id)


@private_mutation.input(OrderIn).mutation
async def mark_paid(ctx: MutationCtx, input: OrderIn) -> None:
    """Record that the order was charged."""
    order = await ctx.db.get(Order, input.order_id)
    if order is None:
        raise CRPCError("NOT_FOUND", f"order {input.order_id!r} not found")
    order.status = "paid"
    order.paid_at = now_ms()


@public_query.input(OrderIn).query
async def get_order(ctx: QueryCtx, input: OrderIn) -> OrderOut | None:
    """The order, or ``None``."""
    order = await ctx.db.get(Order, input.order_id)
    return None if order is None else OrderOut.model_validate(order, from_attributes=True)
