"""Reports: the "daily report" cron gathers the day's stats and stores them as a report."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel, Field

from kitcn_temporal import ActionCtx, BaseCtx, Caller, KitcnClient, MutationCtx, QueryCtx, create_caller

from . import analytics
from ._crpc import private_action, private_mutation, public_query
from .analytics import DailyStats
from .models import Report, new_id


def reports_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx``."""
    return create_caller(ctx, sys.modules[__name__])


class CreateReportIn(BaseModel):
    type: str = Field(min_length=1, max_length=50)
    data: dict[str, Any]


class DailyReportOut(BaseModel):
    stats: DailyStats
    #: The ``reports.create`` job that stores the report.
    report_job_id: str


class ReportIn(BaseModel):
    report_id: str


class ReportOut(BaseModel):
    id: str
    type: str
    data: dict[str, Any]
    created_at: int


@private_mutation.input(CreateReportIn).mutation
async def create(ctx: MutationCtx, input: CreateReportIn) -> str:
    """Store a report; returns its id."""
    report = Report(id=new_id(), type=input.type, data=input.data)
    ctx.db.add(report)
    return report.id


@private_action.action
async def generate_daily_report(ctx: ActionCtx) -> DailyReportOut:
    """Collect the day's stats from analytics (an action) and store them as a report at once."""
    stats = await create_caller(ctx, analytics).actions.get_daily_stats()
    report_job_id = await reports_caller(ctx).schedule.now.create(type="daily", data=stats.model_dump())
    return DailyReportOut(stats=stats, report_job_id=report_job_id)


@public_query.input(ReportIn).query
async def get_report(ctx: QueryCtx, input: ReportIn) -> ReportOut | None:
    """The report, or ``None``."""
    report = await ctx.db.get(Report, input.report_id)
    return None if report is None else ReportOut.model_validate(report, from_attributes=True)
