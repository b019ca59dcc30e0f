"""The reference app: every example of kitcn's scheduling guide, in Python on Temporal.

One module per concern, each procedure a Temporal activity named ``<module>.<function>``:
``orders`` (``schedule.after``), ``items`` (``schedule.now``), ``reminders``
(``schedule.at``), ``subscriptions`` (stored job ids and ``schedule.cancel``), ``sessions``
and ``reports``/``analytics`` (the crons' targets, see ``workflows/crons.py``) and ``jobs``
(the ``_scheduled_functions`` table). Data lives in SQL through ``ctx.db``.
"""

from __future__ import annotations

from typing import Any

from kitcn_temporal import DEFAULT_TASK_QUEUE, App

#: The app's database unless told otherwise: SQLite under ``.kitcn/`` (relative to the
#: working directory, created on first use). ``App.discover("activities")`` and the
#: command line (``kitcn-temporal dev``/``worker``) use it; ``--database URL`` overrides it.
DATABASE = "sqlite+aiosqlite:///.kitcn/app.db"


def create_app(database: str | None = None, task_queue: str | None = None, **options: Any) -> App:
    """The reference app, ready for a worker or a client.

    :param database: SQLAlchemy URL of its data (default :data:`DATABASE`), e.g.
        ``"postgresql+asyncpg://kitcn@db/kitcn"``.
    :param task_queue: where its jobs run (default ``"kitcn"``).
    :param options: more :class:`~kitcn_temporal.App` options (timeouts).
    """
    return App.discover(__name__, database=database or DATABASE, task_queue=task_queue or DEFAULT_TASK_QUEUE, **options)
