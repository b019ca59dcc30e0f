"""Completion callbacks (``schedule.options(on_complete=...)``) and procedures that cannot be one."""

from __future__ import annotations

from pydantic import BaseModel

from kitcn_temporal import Completion, private_action, private_mutation

from .probe import RUNS


@private_mutation.input(Completion).mutation
async def record_completion(ctx, input: Completion) -> None:
    RUNS[f"done:{input.job_id}"].append(input.model_dump())


@private_mutation.input(Completion).mutation
async def failing_callback(ctx, input: Completion) -> None:
    RUNS[f"done:{input.job_id}"].append("tried")
    raise ValueError("the callback is broken")


@private_action.input(Completion).action
async def action_callback(ctx, input: Completion) -> None:
    """Not a callback: callbacks are mutations (run exactly once)."""


class Unrelated(BaseModel):
    order_id: str


@private_mutation.input(Unrelated).mutation
async def wrong_shape(ctx, input: Unrelated) -> None:
    """Not a callback: it cannot take a job's completion."""
