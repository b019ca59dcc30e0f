"""The fault app's table: one row per committed mutation effect."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Effect(Base):
    """Written by a mutation job: "exactly once" means one row per job id."""

    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The job that wrote it (deliberately not unique: a second run would show as a second row).
    job_id: Mapped[str] = mapped_column(String(200), index=True)
    token: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
