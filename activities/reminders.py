"""Reminders: ``schedule_reminder`` sends one at a given time (``schedule.at``)."""

from __future__ import annotations

import sys

from pydantic import BaseModel, Field

from kitcn_temporal import BaseCtx, Caller, CRPCError, KitcnClient, MutationCtx, QueryCtx, create_caller

from ._crpc import private_mutation, public_mutation, public_query
from .models import Reminder, new_id, now_ms


def reminders_caller(ctx: BaseCtx | KitcnClient) -> Caller:
    """This module's procedures, called or scheduled from ``ctx``."""
    return create_caller(ctx, sys.modules[__name__])


class ScheduleReminderIn(BaseModel):
    message: str = Field(min_length=1, max_length=1000)
    #: When to send it, in milliseconds since the epoch.
    send_at: int


class ScheduledReminder(BaseModel):
    reminder_id: str
    #: The ``reminders.send`` job: cancel it with ``schedule.cancel(job_id)``.
    job_id: str


class SendIn(BaseModel):
    reminder_id: str
    message: str


class ReminderIn(BaseModel):
    reminder_id: str


class ReminderOut(BaseModel):
    id: str
    message: str
    send_at: int
    job_id: str | None
    sent_at: int | None


@public_mutation.input(ScheduleReminderIn).mutation
async def schedule_reminder(ctx: MutationCtx, input: ScheduleReminderIn) -> ScheduledReminder:
    """Store a reminder and send it at ``send_at``; a time that is not in the future is refused."""
    if input.send_at <= now_ms():
        raise CRPCError("BAD_REQUEST", "reminder time must be in the future")
    reminder = Reminder(id=new_id(), message=input.message, send_at=input.send_at)
    reminder.job_id = (
        await reminders_caller(ctx).schedule.at(input.send_at).send(reminder_id=reminder.id, message=input.message)
    )
    ctx.db.add(reminder)
    return ScheduledReminder(reminder_id=reminder.id, job_id=reminder.job_id)


@private_mutation.input(SendIn).mutation
async def send(ctx: MutationCtx, input: SendIn) -> bool:
    """Deliver the reminder (an in-app notification: a row update); ``False`` if it is gone."""
    reminder = await ctx.db.get(Reminder, input.reminder_id)
    if reminder is None:
        return False
    ctx.logger.info("reminder: %s", input.message)
    reminder.sent_at = now_ms()
    return True


@public_query.input(ReminderIn).query
async def get_reminder(ctx: QueryCtx, input: ReminderIn) -> ReminderOut | None:
    """The reminder, or ``None``."""
    reminder = await ctx.db.get(Reminder, input.reminder_id)
    return None if reminder is None else ReminderOut.model_validate(reminder, from_attributes=True)
