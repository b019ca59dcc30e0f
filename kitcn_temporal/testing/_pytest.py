"""The pytest plugin (entry point ``pytest11``): a ``kitcn_env`` fixture, and a reliable exit.

Fixtures:

* ``kitcn_env``: a :class:`~kitcn_temporal.testing.TestEnv` per test, built from the
  ``kitcn_app`` fixture you define (an :class:`~kitcn_temporal.App`), and from
  ``kitcn_crons`` (cron declarations) and ``kitcn_database`` (a SQL URL) if you define them;
* ``kitcn_server``: the session's :class:`~kitcn_temporal.testing.TestServer`, started
  on first use (override it to return the address of a server you run yourself).

``kitcn_env`` is an async fixture run in the event loop of your tests
(``asyncio_default_test_loop_scope``), so it needs pytest-asyncio. Each test gets a
namespace and a database of its own; the server subprocess lives for the session.

The Temporal SDK can abort the interpreter as it exits (sdk-python#300: ``Fatal Python
error: PyGILState_Release``), turning a green run red about once in three. When the run
started Temporal's runtime (any client or worker did), this plugin ends the process with
pytest's exit status once everything else has finished (``KITCN_TEST_NO_HARD_EXIT=1`` turns
that off); a run that never used Temporal exits as usual.

Layer: testing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._app import App
    from ._env import TestEnv
    from ._server import TestServer

_NO_HARD_EXIT = "KITCN_TEST_NO_HARD_EXIT"

#: The outermost pytest run of this process (a run inside it, e.g. pytester's, is left alone).
_outermost: pytest.Config | None = None
_session: pytest.Session | None = None


@pytest.fixture(scope="session")
def kitcn_server() -> Iterator[TestServer | str]:
    """The test session's embedded Temporal server, with time skipping (started on first use)."""
    from ._server import TestServer

    with TestServer.start() as server:
        yield server


@pytest.fixture
def kitcn_app() -> App:
    """The app under test: define this fixture (``return App.discover("myapp")``)."""
    pytest.fail(
        "the kitcn_env fixture needs your app: define a fixture named kitcn_app that returns it "
        '(@pytest.fixture def kitcn_app(): return App.discover("myapp"))',
        pytrace=False,
    )


@pytest.fixture
def kitcn_crons() -> Any:
    """The app's crons for ``kitcn_env`` (``cron_jobs()``); none unless you define it."""
    return None


@pytest.fixture
def kitcn_database() -> str | None:
    """The app's SQL URL for each test; default: a fresh SQLite file when the app has a database."""
    return None


async def _kitcn_env(
    kitcn_app: App, kitcn_crons: Any, kitcn_database: str | None, kitcn_server: TestServer | str
) -> AsyncIterator[TestEnv]:
    from ._env import TestEnv

    async with TestEnv.start(kitcn_app, kitcn_crons, kitcn_database, server=kitcn_server) as env:
        yield env


def _env_fixture(loop_scope: str) -> Any:
    """``kitcn_env``, run in the event loop the tests run in."""
    import pytest_asyncio

    return pytest_asyncio.fixture(_kitcn_env, name="kitcn_env", loop_scope=loop_scope)  # type: ignore[call-overload]


def _missing_asyncio_fixture() -> Any:
    @pytest.fixture(name="kitcn_env")
    def kitcn_env() -> None:
        pytest.fail(
            "the kitcn_env fixture is async: install pytest-asyncio (pip install pytest-asyncio)", pytrace=False
        )

    return kitcn_env


def pytest_configure(config: pytest.Config) -> None:
    global _outermost
    if _outermost is None:
        _outermost = config
    try:
        loop_scope = config.getini("asyncio_default_test_loop_scope") or "function"
        fixture = _env_fixture(loop_scope)
    except (ImportError, ValueError):  # pytest-asyncio is not installed
        fixture = _missing_asyncio_fixture()
    # A plugin of its own, made now: its loop scope is only known once the ini is read.
    holder = ModuleType("kitcn_temporal.testing.kitcn_env")
    holder.kitcn_env = fixture  # type: ignore[attr-defined]
    config.pluginmanager.register(holder, holder.__name__)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    global _session
    if session.config is _outermost:
        _session = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's status before the interpreter's exit, where the SDK can abort."""
    global _outermost
    if config is not _outermost:
        return
    _outermost = None
    if _session is None or os.environ.get(_NO_HARD_EXIT) or not _temporal_runtime_started():
        return
    from ..ops._script import exit_now

    exit_now(int(_session.exitstatus))


def _temporal_runtime_started() -> bool:
    """Whether this process started Temporal's default runtime (whose threads can abort the exit)."""
    runtime = sys.modules.get("temporalio.runtime")
    if runtime is None:
        return False
    ref = getattr(runtime, "_runtime_ref", None)
    return ref is None or getattr(ref, "_default_runtime", True) is not None  # an unknown SDK layout: assume so
