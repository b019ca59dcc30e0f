"""The chaos app's table: one row per committed mutation run."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LedgerRow(Base):
    """Written by a mutation run: "exactly once" means one row per job id."""

    __tablename__ = "chaos_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The job that wrote it (not unique on purpose: a second run shows as a second row).
    job_id: Mapped[str] = mapped_column(String(300), index=True)
    #: What the producer meant it as: ``now``, ``delayed``, ``keyed``, ``cron``, ...
    kind: Mapped[str] = mapped_column(String(32))
    #: Wall-clock time of the write, in seconds.
    at: Mapped[float] = mapped_column(Float)
