"""Analytics: the day's figures, which the daily report collects."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from kitcn_temporal import ActionCtx, BaseCtx, Caller, KitcnClient, QueryCtx, create_caller

from ._crpc import private_action, private_query
from .models import Item, Order, Reminder, Session, now_ms

DAY_MS = int(timedelta(days=1).total_seconds() * 1000)


def analytics_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx``."""
    return create_caller(ctx, sys.modules[__name__])


class CountsIn(BaseModel):
    since: int


class DailyStats(BaseModel):
    #: The 24 hours the figures cover end here (ms since the epoch) ...
    until: int
    #: ... and their day, ``YYYY-MM-DD`` (UTC).
    day: str
    orders_created: int
    orders_paid: int
    items_created: int
    reminders_sent: int
    active_sessions: int


@private_query.input(CountsIn).query
async def counts_since(ctx: QueryCtx, input: CountsIn) -> dict[str, int]:
    """How many rows of each kind changed since ``since`` (ms since the epoch)."""

    async def count(column: Any) -> int:
        return int(await ctx.db.scalar(select(func.count()).where(column >= input.since)) or 0)

    return {
        "orders_created": await count(Order.created_at),
        "orders_paid": await count(Order.paid_at),
        "items_created": await count(Item.created_at),
        "reminders_sent": await count(Reminder.sent_at),
        "active_sessions": await count(Session.last_active_at),
    }


@private_action.action
async def get_daily_stats(ctx: ActionCtx) -> DailyStats:
    """The last 24 hours in figures (an action: it could as well ask an analytics service)."""
    until = now_ms()
    counts = await analytics_caller(ctx).counts_since(since=until - DAY_MS)
    day = datetime.fromtimestamp(until / 1000, tz=timezone.utc).date().isoformat()
    return DailyStats(until=until, day=day, **counts)
