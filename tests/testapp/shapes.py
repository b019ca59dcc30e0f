"""Builder features: annotations, outputs, names, meta, middleware."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kitcn_temporal import init_crpc, public_mutation, public_query

c = init_crpc(team="core")


class Point(BaseModel):
    x: int
    y: int


class Sum(BaseModel):
    total: int


@public_query.query
async def add(ctx, input: Point) -> Sum:
    """Input from the annotation, output validated as a model."""
    return Sum(total=input.x + input.y)


@public_query.input(Point).output(int).query
async def wrong_output(ctx, input: Point) -> Any:
    return "not a number"


@public_query.query
async def no_args(ctx) -> str:
    return "nothing needed"


@public_mutation.name("custom.renamed").input(Point).mutation
async def renamed(ctx, input: Point) -> int:
    return input.x


async def stamp(ctx: Any, next: Any) -> Any:
    return await next(ctx.with_values(stamped=f"{ctx.meta['team']}/{ctx.meta.get('area')}"))


async def swallow(ctx: Any, next: Any) -> Any:
    return None  # never calls next


@c.query.use(stamp).meta(area="maps").query
async def stamped(ctx) -> str:
    return str(ctx.stamped)


@c.query.use(swallow).query
async def swallowed(ctx) -> str:
    return "unreachable"
