"""Subscriptions: each one expires in 30 days unless canceled first.

``create_subscription`` stores the id of its expiration job; ``cancel_subscription``
cancels that job (the guide's "store job IDs" pattern). Both need a signed-in caller;
the scheduled ``expire`` gets the user as an argument, since auth is never propagated.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from pydantic import BaseModel, Field

from kitcn_temporal import BaseCtx, Caller, CRPCError, KitcnClient, MutationCtx, QueryCtx, create_caller

from ._crpc import auth_mutation, auth_query, private_mutation
from .models import Subscription, new_id, now_ms

#: How long a subscription lasts.
SUBSCRIPTION_LENGTH = timedelta(days=30)


def subscriptions_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx``."""
    return create_caller(ctx, sys.modules[__name__])


class CreateSubscriptionIn(BaseModel):
    plan_id: str = Field(min_length=1, max_length=200)


class SubscriptionIn(BaseModel):
    subscription_id: str


class ExpireIn(BaseModel):
    subscription_id: str
    user_id: str


class SubscriptionOut(BaseModel):
    id: str
    user_id: str
    plan_id: str
    status: str
    expires_at: int
    expiration_job_id: str | None


@auth_mutation.input(CreateSubscriptionIn).mutation
async def create_subscription(ctx: MutationCtx, input: CreateSubscriptionIn) -> str:
    """Subscribe the caller to a plan for 30 days; returns the subscription id."""
    subscription_id = new_id()
    # Schedule expiration in 30 days.
    expiration_job_id = (
        await subscriptions_caller(ctx)
        .schedule.after(SUBSCRIPTION_LENGTH)
        .expire(subscription_id=subscription_id, user_id=ctx.user_id)
    )
    # Store the job id for cancellation.
    ctx.db.add(
        Subscription(
            id=subscription_id,
            user_id=ctx.user_id,
            plan_id=input.plan_id,
            expires_at=now_ms() + int(SUBSCRIPTION_LENGTH.total_seconds() * 1000),
            expiration_job_id=expiration_job_id,
        )
    )
    return subscription_id


@auth_mutation.input(SubscriptionIn).mutation
async def cancel_subscription(ctx: MutationCtx, input: SubscriptionIn) -> None:
    """Cancel the caller's subscription: its expiration job is canceled and the row deleted."""
    subscription = await ctx.db.get(Subscription, input.subscription_id)
    if subscription is None or subscription.user_id != ctx.user_id:
        raise CRPCError("NOT_FOUND", "subscription not found")
    # Cancel the scheduled expiration (atomically with the delete below).
    if subscription.expiration_job_id:
        await subscriptions_caller(ctx).schedule.cancel(subscription.expiration_job_id)
    await ctx.db.delete(subscription)


@private_mutation.input(ExpireIn).mutation
async def expire(ctx: MutationCtx, input: ExpireIn) -> bool:
    """Mark the subscription expired; ``False`` if it no longer exists (canceled meanwhile)."""
    subscription = await ctx.db.get(Subscription, input.subscription_id)
    if subscription is None or subscription.user_id != input.user_id:
        return False
    subscription.status = "expired"
    return True


@auth_query.input(SubscriptionIn).query
async def get_subscription(ctx: QueryCtx, input: SubscriptionIn) -> SubscriptionOut | None:
    """The caller's subscription, or ``None``."""
    subscription = await ctx.db.get(Subscription, input.subscription_id)
    if subscription is None or subscription.user_id != ctx.user_id:
        return None
    return SubscriptionOut.model_validate(subscription, from_attributes=True)
