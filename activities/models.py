"""The reference app's tables (SQLAlchemy 2), written through ``ctx.db``.

Times are milliseconds since the epoch, as in Convex. The tables are created on first
use (see :func:`activities._crpc.with_tables`); a production app would rather manage
them with migrations (Alembic).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def new_id() -> str:
    """A fresh row id (a mutation's retried attempt returns its recorded output, so ids stay stable)."""
    return uuid.uuid4().hex[:16]


class Base(DeclarativeBase):
    pass


class Order(Base):
    """An order: ``pending`` -> ``processing`` (``process_order``) -> ``paid`` (``charge``)."""

    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    customer: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    #: The ``orders.charge`` job that ``process_order`` scheduled.
    charge_job_id: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)
    paid_at: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)


class Item(Base):
    """An item; ``notified_at`` is set by the ``send_notification`` job ``create_item`` schedules."""

    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)
    notified_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Session(Base):
    """A user session; ``cleanup_stale_data`` deletes those inactive for 30 days."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200))
    last_active_at: Mapped[int] = mapped_column(BigInteger, index=True)


class Reminder(Base):
    """A reminder due at ``send_at``; ``sent_at`` is set by the ``reminders.send`` job."""

    __tablename__ = "reminders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    message: Mapped[str] = mapped_column(String(1000))
    send_at: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str | None] = mapped_column(String(200), default=None)
    sent_at: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)


class Subscription(Base):
    """A user's subscription, with the id of the job that expires it (so it can be canceled)."""

    __tablename__ = "subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    plan_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    expires_at: Mapped[int] = mapped_column(BigInteger)
    expiration_job_id: Mapped[str | None] = mapped_column(String(200), default=None)


class Report(Base):
    """A report written by ``reports.create`` (the daily report's stats, for instance)."""

    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(50), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
