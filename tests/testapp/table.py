"""Targets for the status table's tests: each name is used by one test only, so that
``list(name=...)`` sees that test's jobs alone."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from kitcn_temporal import private_action, private_mutation, private_query

from .probe import gate


class OutcomeIn(BaseModel):
    token: str
    #: ``ok`` succeeds, ``fail`` raises, ``hold`` runs until the token's gate opens.
    outcome: Literal["ok", "fail", "hold"] = "ok"


class RowIn(BaseModel):
    token: str
    index: int = 0


@private_action.input(OutcomeIn).action
async def outcome(ctx, input: OutcomeIn) -> str:
    if input.outcome == "fail":
        raise ValueError("asked to fail")
    if input.outcome == "hold":
        await gate(input.token).wait()
    return input.outcome


@private_mutation.input(RowIn).mutation
async def row(ctx, input: RowIn) -> int:
    return input.index


@private_mutation.input(RowIn).mutation
async def listed(ctx, input: RowIn) -> int:
    """Listed by the command line's tests."""
    return input.index


class PageIn(BaseModel):
    name: str


@private_query.input(PageIn).query
async def page_jobs(ctx, input: PageIn) -> dict[str, Any]:
    """The first page of pending jobs of ``name``, read from inside a procedure."""
    result = await ctx.system.paginate(state="pending", name=input.name, page_size=1000)
    return result.model_dump(by_alias=True)
