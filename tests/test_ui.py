"""docs/semantics.md §13, the Temporal UI: a job's id names its function, its Input is its arguments,
and a UI given the codec endpoint shows encrypted arguments decrypted (a real headless browser)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from conftest import make_app
from helpers import token, wait_state
from kitcn_temporal import KitcnClient
from kitcn_temporal._plugin import connect_when_ready
from kitcn_temporal._wire import MEMO_ARGS, MEMO_SPEC
from kitcn_temporal.ops._codec_server import CodecServer, serve_codec
from kitcn_temporal.ops._devserver import DevServer, free_port, start_dev_server
from kitcn_temporal.ops._encryption import EncryptionCodec
from testapp.probe import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = os.urandom(32)


async def started_input(client: Client, job_id: str) -> list[object]:
    """The job workflow's input, decoded: what the UI's Input panel shows."""
    async for event in client.get_workflow_handle(job_id).fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        return list(await client.data_converter.decode(payloads))
    raise AssertionError(f"{job_id} has no history")


async def test_a_jobs_id_begins_with_its_function_and_its_input_is_its_arguments(
    kitcn: KitcnClient, client: Client
) -> None:
    tok = token()
    direct = await kitcn.scheduler.run_after(600_000, "targets.touch", {"token": tok})
    keyed = await kitcn.scheduler.run_after(600_000, "targets.touch", {"token": tok}, key=f"ui:{tok}")
    parent = await kitcn.scheduler.run_after(0, "producers.schedule_many", {"token": tok, "count": 1, "delay_ms": 0})
    await wait_state(kitcn, parent, "success")
    (child,) = await wait_for(lambda: _children(kitcn, tok))
    assert direct.startswith("targets.touch-") and parent.startswith("producers.schedule_many-")
    assert child.startswith("targets.take_payload-") and keyed == f"key:ui:{tok}"
    assert await started_input(client, direct) == [{"token": tok}]
    # The arguments as validated at the schedule call, defaults filled in.
    assert await started_input(client, parent) == [{"token": tok, "count": 1, "size": 0, "delay_ms": 0}]
    memo = await (await client.get_workflow_handle(direct).describe()).memo()
    assert memo[MEMO_ARGS] == {"token": tok} and memo[MEMO_SPEC]["name"] == "targets.touch"
    for job_id in (direct, keyed):
        await kitcn.scheduler.cancel(job_id)


async def _children(kitcn: KitcnClient, tok: str) -> list[str]:
    rows = await kitcn.system.list(name="targets.take_payload", limit=1000)
    return [r.id for r in rows if r.args.get("token") == tok]


# -- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ui() -> AsyncIterator[tuple[DevServer, CodecServer]]:
    """A dev server whose UI decodes with a codec endpoint of KEY."""
    ui_port, codec_port = free_port(), free_port()
    origins = [f"http://127.0.0.1:{ui_port}"]
    codec = serve_codec(EncryptionCodec([KEY]), port=codec_port, origins=origins)
    server = await asyncio.to_thread(
        start_dev_server, ui=True, ui_port=ui_port, extra_args=("--ui-codec-endpoint", codec.url)
    )
    yield server, codec
    server.stop()
    codec.close()


def page_text(url: str) -> str:
    """The page's DOM once its scripts have run (headless Chromium, virtual time)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=8000", "--dump-dom", url,
        ]  # fmt: skip
        return subprocess.run(args, capture_output=True, text=True, timeout=90, check=True).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
async def test_the_ui_lists_jobs_by_function_and_shows_encrypted_arguments_decoded(
    ui: tuple[DevServer, CodecServer],
) -> None:
    server, _ = ui
    app = make_app()
    # A fresh server listens a moment before it serves: connect once it answers.
    client = await connect_when_ready(server.address, app, encryption_keys=[KEY])
    secret = f"ada-{token()}@example.com"
    kitcn = KitcnClient(client, app)
    async with Worker(client, task_queue=app.task_queue):
        job_id = await kitcn.scheduler.run_after(0, "targets.touch", {"token": secret})
        await wait_state(kitcn, job_id, "success")
    base = f"{server.ui_url}/namespaces/default/workflows"
    listing = await asyncio.to_thread(page_text, base)
    assert job_id in listing  # the default list shows the id, and so the function
    job_page = await asyncio.to_thread(page_text, f"{base}/{job_id}")
    assert secret in job_page  # the Input panel, decrypted by the codec endpoint
