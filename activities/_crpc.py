"""The reference app's procedure builders (kitcn's ``lib/crpc``).

Every builder here first makes sure the app's tables exist (:func:`with_tables`);
``auth_mutation`` / ``auth_query`` also require a signed-in caller and give the
handler ``ctx.user_id``.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import kitcn_temporal as kitcn
from kitcn_temporal import CRPCError
from kitcn_temporal.sql import Store

from .models import Base

Next = Callable[[Any], Awaitable[Any]]

#: The stores whose tables are known to exist (one per App in this process).
_stores_ready: weakref.WeakSet[Store] = weakref.WeakSet()


async def with_tables(ctx: Any, next: Next) -> Any:
    """Create the app's tables on the first procedure that runs against a database.

    It runs before the handler opens ``ctx.db`` (the session connects lazily), so the
    tables are created in a short transaction of their own.
    """
    store = ctx.app.store
    if store is None:
        raise CRPCError(
            "INTERNAL_SERVER_ERROR",
            "the reference app keeps its data in SQL: build it with activities.create_app() "
            "or App.discover('activities'), which use activities.DATABASE unless given a database",
        )
    if store not in _stores_ready:
        try:
            await store.create_all(Base.metadata)
        except Exception:
            # Another worker created them at the same moment (PostgreSQL): they exist now.
            await store.create_all(Base.metadata)
        _stores_ready.add(store)
    return await next(ctx)


async def require_user(ctx: Any, next: Next) -> Any:
    """Refuse callers without an identity; pass the signed-in user on as ``ctx.user_id``.

    The identity is ``{"user_id": ...}`` (``KitcnClient.with_auth({"user_id": "u1"})``).
    Scheduled functions never carry one: they take the user as an argument instead.
    """
    user_id = ctx.auth.get("user_id") if isinstance(ctx.auth, dict) else None
    if not isinstance(user_id, str) or not user_id:
        raise CRPCError(
            "UNAUTHORIZED",
            "sign in first: this procedure needs the caller's identity, {'user_id': ...} (KitcnClient.with_auth)",
        )
    return await next(ctx.with_values(user_id=user_id))


public_query = kitcn.public_query.use(with_tables)
public_mutation = kitcn.public_mutation.use(with_tables)
private_query = kitcn.private_query.use(with_tables)
private_mutation = kitcn.private_mutation.use(with_tables)
private_action = kitcn.private_action.use(with_tables)
auth_query = public_query.use(require_user)
auth_mutation = public_mutation.use(require_user)
