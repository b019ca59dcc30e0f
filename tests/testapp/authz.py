"""Procedures behind an auth middleware, derived from init_crpc()."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kitcn_temporal import CRPCError, init_crpc

c = init_crpc()


async def require_user(ctx: Any, next: Any) -> Any:
    if ctx.auth is None:
        raise CRPCError("UNAUTHORIZED", "sign in first")
    return await next(ctx.with_values(user=ctx.auth["user"]))


auth_mutation = c.mutation.use(require_user)
auth_query = c.query.use(require_user)


class TokenIn(BaseModel):
    token: str


@auth_mutation.input(TokenIn).mutation
async def whoami(ctx, input: TokenIn) -> str:
    return str(ctx.user)


@auth_query.query
async def my_name(ctx) -> str:
    return str(ctx.user)
