"""The demo (``python demo.py``, what ``make demo`` runs): every guide scenario, end to end."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from clihelpers import server_processes
from conftest import ROOT
from kitcn_temporal.ops._devserver import free_port, port_open

#: The demo must finish on its own well within this (it takes about 10 s here).
DEMO_TIMEOUT = 90.0

#: Each scenario's job, its procedure and the state the table must show.
EXPECTED_ROWS = [
    ("order: charge after 5 s", "orders.charge", "success"),
    ("item: notification now", "items.send_notification", "success"),
    ("reminder: at, then canceled", "reminders.send", "canceled"),
    ("subscription: expiry canceled", "subscriptions.expire", "canceled"),
    ("cron: cleanup stale data", "sessions.cleanup_stale_data", "success"),
    ("cron: daily report", "reports.generate_daily_report", "success"),
    ("daily report: create now", "reports.create", "success"),
]


@pytest.fixture(scope="module")
async def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path, int, int]:
    """One run of the demo in an empty directory, on ports of its own."""
    cwd = tmp_path_factory.mktemp("demo")
    port, ui_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "demo.py"),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEMO_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the demo did not finish within {DEMO_TIMEOUT:g}s") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), cwd, port, ui_port


async def test_demo_exits_zero_on_its_own(demo_run: tuple[int, str, str, Path, int, int]) -> None:
    code, out, err, *_ = demo_run
    assert code == 0, f"{out}\n{err}"
    assert "Traceback" not in err and "All scenarios ended as expected." in out


@pytest.mark.parametrize(("scenario", "function", "state"), EXPECTED_ROWS)
async def test_demo_table_shows_each_scenarios_final_state(
    demo_run: tuple[int, str, str, Path, int, int], scenario: str, function: str, state: str
) -> None:
    out = demo_run[1]
    table = out.split("Jobs (the _scheduled_functions table):", 1)[-1]
    assert re.search(rf"^{re.escape(scenario)}\s+{re.escape(function)}\s+{state}\s", table, re.M), out


async def test_demo_charges_the_order_about_five_seconds_after_processing_it(
    demo_run: tuple[int, str, str, Path, int, int],
) -> None:
    seconds = re.search(r"orders\.charge ran (\d+\.\d) s later, the order is paid", demo_run[1])
    assert seconds is not None, demo_run[1]
    assert float(seconds.group(1)) >= 4.9  # the timer is never early; how late depends on the machine


async def test_demo_prints_the_temporal_ui_address(demo_run: tuple[int, str, str, Path, int, int]) -> None:
    assert f"Temporal UI: http://127.0.0.1:{demo_run[5]}" in demo_run[1]


async def test_demo_keeps_its_data_under_dot_kitcn_and_stops_its_server(
    demo_run: tuple[int, str, str, Path, int, int],
) -> None:
    _, _, _, cwd, port, _ = demo_run
    assert (cwd / ".kitcn" / "temporal.db").exists() and (cwd / ".kitcn" / "app.db").exists()
    assert server_processes(port) == [] and not port_open("127.0.0.1", port)
