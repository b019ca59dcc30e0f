"""docs/semantics.md §13, encryption at rest: an AES-256-GCM payload codec, key rotation, the codec endpoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest, GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.worker import Worker

from clihelpers import Launcher, assert_one_line_error, cli, server_processes
from conftest import make_app
from helpers import token, wait_state
from kitcn_temporal import App, KitcnClient, KitcnPlugin
from kitcn_temporal._plugin import connect_when_ready
from kitcn_temporal.ops._codec_server import serve_codec
from kitcn_temporal.ops._devserver import DevServer, free_port, start_dev_server, temporal_binary
from kitcn_temporal.ops._encryption import ENCODING, KEYS_ENV, EncryptionCodec, EncryptionKeyError, key_id

KEY_1, KEY_2 = os.urandom(32), os.urandom(32)
UI_ORIGIN = "http://127.0.0.1:8233"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def connect(server: DevServer, app: App, keys: Sequence[bytes | str] | None) -> Client:
    return await connect_when_ready(server.address, app, encryption_keys=keys)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[DevServer]:
    """A Temporal server of this module's own: its encrypted jobs stay out of the suite's lists
    (a reader without the key gets an error for a list that holds one)."""
    started = await asyncio.to_thread(start_dev_server)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sealed_app() -> App:
    return make_app()


@pytest.fixture(scope="module")
async def sealed(server: DevServer, sealed_app: App) -> AsyncIterator[KitcnClient]:
    """A client and worker whose payloads are encrypted with KEY_1 (and may be read with KEY_2)."""
    encrypted = await connect_when_ready(server.address, sealed_app, encryption_keys=[KEY_1, b64(KEY_2)])
    async with Worker(encrypted, task_queue=sealed_app.task_queue):
        yield KitcnClient(encrypted, sealed_app)


@pytest.fixture(scope="module")
async def plain(server: DevServer) -> AsyncIterator[KitcnClient]:
    """A client and worker without encryption, on the same server."""
    app = make_app()
    client = await connect_when_ready(server.address, app, encryption_keys=[])
    async with Worker(client, task_queue=app.task_queue):
        yield KitcnClient(client, app)


@pytest.fixture(scope="module")
def client(plain: KitcnClient) -> Client:
    return plain.client


async def raw_bytes(client: Client, job_id: str) -> bytes:
    """The job's history and description as Temporal stores and returns them (nothing decoded)."""
    execution = WorkflowExecution(workflow_id=job_id)
    history = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace=client.namespace, execution=execution)
    )
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=execution)
    )
    return history.SerializeToString() + described.SerializeToString()


def temporal_show(server: DevServer, job_id: str) -> bytes:
    """``temporal workflow show -o json`` as an operator's shell sees it, with every payload's
    base64 ``data`` decoded beside it."""
    args = [temporal_binary(), "workflow", "show", "-w", job_id, "-o", "json", "--address", server.address]
    text = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    return text.encode() + b"".join(base64.b64decode(d) for d in _data_fields(json.loads(text)))


def _data_fields(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["data"]] if isinstance(value.get("data"), str) else []
        return found + [d for v in value.values() for d in _data_fields(v)]
    if isinstance(value, list):
        return [d for v in value for d in _data_fields(v)]
    return []


async def test_a_secret_argument_is_absent_from_raw_history_and_memo_yet_read_back_by_get(
    server: DevServer, client: Client, plain: KitcnClient, sealed: KitcnClient
) -> None:
    secret = f"ada-{token()}@example.com"
    plain_job = await plain.scheduler.run_after(0, "targets.touch", {"token": secret})
    sealed_job = await sealed.scheduler.run_after(0, "targets.touch", {"token": secret})
    for reader, job_id in ((plain, plain_job), (sealed, sealed_job)):
        await wait_state(reader, job_id, "success")
    # Without encryption the secret is there to find: the checks below look in the right places.
    assert secret.encode() in await raw_bytes(client, plain_job)
    assert secret.encode() in await asyncio.to_thread(temporal_show, server, plain_job)
    assert secret.encode() not in await raw_bytes(client, sealed_job)
    assert secret.encode() not in await asyncio.to_thread(temporal_show, server, sealed_job)
    job = await sealed.system.get(sealed_job)
    assert job is not None and job.args == {"token": secret} and job.state.kind == "success"
    listed = await sealed.system.list(name="targets.touch", limit=1000)
    assert any(r.id == sealed_job and r.args == {"token": secret} for r in listed)


async def test_a_failure_that_quotes_a_secret_is_encrypted_too(client: Client, sealed: KitcnClient) -> None:
    secret = f"card-{token()}"
    job_id = await sealed.scheduler.run_after(0, "targets.refuse_quoting", {"token": secret})
    job = await wait_state(sealed, job_id, "failed")
    assert job.state.error is not None and secret in job.state.error
    assert secret.encode() not in await raw_bytes(client, job_id)


async def test_a_rotated_key_reads_old_payloads_and_seals_new_ones(
    server: DevServer, sealed_app: App, sealed: KitcnClient
) -> None:
    old = await sealed.scheduler.run_after(600_000, "targets.touch", {"token": "sealed with key 1"})
    rotated = KitcnClient(await connect(server, sealed_app, [KEY_2, KEY_1]), sealed_app)
    assert (await rotated.system.get(old)) is not None
    new = await rotated.scheduler.run_after(600_000, "targets.touch", {"token": "sealed with key 2"})
    described = await rotated.client.get_workflow_handle(new).describe()
    memo = described.raw_description.workflow_execution_info.memo.fields["args"]
    assert memo.metadata["encoding"] == ENCODING and memo.metadata["encryption-key-id"] == key_id(KEY_2).encode()
    only_old = KitcnClient(await connect(server, sealed_app, [KEY_1]), sealed_app)
    with pytest.raises(EncryptionKeyError, match=f"key {key_id(KEY_2)}, which is not among the configured keys"):
        await only_old.system.get(new)
    for job_id in (old, new):
        await rotated.scheduler.cancel(job_id)


async def test_reading_without_a_key_is_one_clear_error_nothing_half_decoded(
    server: DevServer, sealed_app: App, sealed: KitcnClient
) -> None:
    job_id = await sealed.scheduler.run_after(600_000, "targets.touch", {"token": token()})
    keyless = KitcnClient(await connect(server, sealed_app, []), sealed_app)
    with pytest.raises(EncryptionKeyError, match=f"job {job_id} is encrypted and this client has no encryption key"):
        await keyless.system.get(job_id)
    with pytest.raises(EncryptionKeyError, match=KEYS_ENV):
        await keyless.system.list(name="targets.touch", limit=1000)
    await sealed.scheduler.cancel(job_id)


async def test_the_cli_decodes_with_the_keys_of_the_environment_and_refuses_in_one_line_without(
    server: DevServer, sealed: KitcnClient
) -> None:
    secret = token()
    job_id = await sealed.scheduler.run_after(600_000, "targets.touch", {"token": secret})
    os.environ[KEYS_ENV] = f"{b64(KEY_2)}, {b64(KEY_1)}"
    try:
        got = await cli(server.address, "jobs", "get", job_id, "--json")
    finally:
        del os.environ[KEYS_ENV]
    assert got.code == 0, got.err
    assert got.json()["args"] == {"token": secret}
    refused = await cli(server.address, "jobs", "get", job_id)
    assert_one_line_error(refused, f"job {job_id} is encrypted", KEYS_ENV)
    await sealed.scheduler.cancel(job_id)


def post(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def test_the_codec_endpoint_decodes_what_the_ui_sends(client: Client, sealed: KitcnClient) -> None:
    secret = token()
    job_id = await sealed.scheduler.run_after(600_000, "targets.touch", {"token": secret})
    described = await client.get_workflow_handle(job_id).describe()
    stored = described.raw_description.workflow_execution_info.memo.fields["args"]
    server = serve_codec(EncryptionCodec([KEY_1]), port=free_port(), origins=[UI_ORIGIN])
    try:
        ui = {"Origin": UI_ORIGIN, "Content-Type": "application/json", "X-Namespace": "default"}
        preflight = await asyncio.to_thread(
            post,
            f"{server.url}/decode",
            b"",
            {"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-namespace"},
            "OPTIONS",
        )  # fmt: skip
        assert preflight[0] == 204
        assert preflight[1]["Access-Control-Allow-Origin"] == UI_ORIGIN
        assert preflight[1]["Access-Control-Allow-Credentials"] == "true"
        assert "x-namespace" in preflight[1]["Access-Control-Allow-Headers"]
        body = json.dumps(json_format.MessageToDict(Payloads(payloads=[stored]))).encode()
        # As the Temporal UI 2.54 calls it, with a query string.
        status, headers, answer = await asyncio.to_thread(
            post, f"{server.url}/decode?preserveStorageRefs=true", body, ui
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
        (decoded,) = json_format.Parse(answer, Payloads()).payloads
        assert json.loads(decoded.data) == {"token": secret}
        assert decoded.metadata["encoding"] == b"json/plain"
        other = {**ui, "Origin": "http://elsewhere.example"}
        _, headers, _ = await asyncio.to_thread(post, f"{server.url}/decode", body, other)
        assert "Access-Control-Allow-Origin" not in headers
        wrong = serve_codec(EncryptionCodec([KEY_2]), port=free_port(), origins=[UI_ORIGIN])
        try:
            status, _, answer = await asyncio.to_thread(post, f"{wrong.url}/decode", body, ui)
        finally:
            wrong.close()
        assert status == 400 and key_id(KEY_1) in json.loads(answer)["error"]
    finally:
        server.close()
    await sealed.scheduler.cancel(job_id)


def test_keys_must_be_32_bytes_or_base64_of_32_bytes() -> None:
    with pytest.raises(ValueError, match="encryption key 1 is 16 bytes: AES-256 needs 32"):
        KitcnPlugin(make_app(), encryption_keys=[os.urandom(16)])
    with pytest.raises(ValueError, match="encryption key 2 is not valid base64"):
        KitcnPlugin(make_app(), encryption_keys=[KEY_1, "not base64!"])


# -- the command line: codec-server, and dev offering it -----------------------------------


@pytest.fixture
async def start(server: DevServer, tmp_path: Path) -> AsyncIterator[Launcher]:
    launcher = Launcher(server.address, tmp_path)
    yield launcher
    await launcher.kill_all()


@contextlib.contextmanager
def keys_in_env(*keys: bytes) -> Iterator[None]:
    os.environ[KEYS_ENV] = ",".join(b64(k) for k in keys)
    try:
        yield
    finally:
        del os.environ[KEYS_ENV]


async def test_codec_server_without_keys_refuses_in_one_line(server: DevServer) -> None:
    result = await cli(server.address, "codec-server", "--port", str(free_port()))
    assert_one_line_error(result, "no encryption keys", KEYS_ENV)


async def test_codec_server_serves_the_keys_of_the_environment(
    start: Launcher, client: Client, sealed: KitcnClient
) -> None:
    port = free_port()
    with keys_in_env(KEY_1):
        server = await start("codec-server", "--port", str(port), "--ui-origin", UI_ORIGIN)
    shown = await server.wait_output("codec server on")
    assert f"http://127.0.0.1:{port}" in shown and key_id(KEY_1) in shown
    job_id = await sealed.scheduler.run_after(600_000, "targets.touch", {"token": "via the command"})
    stored = (await client.get_workflow_handle(job_id).describe()).raw_description.workflow_execution_info.memo
    body = json.dumps(json_format.MessageToDict(Payloads(payloads=[stored.fields["args"]]))).encode()
    status, headers, answer = await asyncio.to_thread(
        post, f"http://127.0.0.1:{port}/decode", body, {"Origin": UI_ORIGIN, "Content-Type": "application/json"}
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert json.loads(json_format.Parse(answer, Payloads()).payloads[0].data) == {"token": "via the command"}
    assert await server.stop(signal.SIGINT) == 0
    await sealed.scheduler.cancel(job_id)


async def test_dev_with_keys_points_its_ui_at_a_codec_endpoint(start: Launcher, tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    with keys_in_env(KEY_1):
        dev = await start("dev", "--app", "testapp", "--port", str(port), "--ui-port", str(ui_port), cwd=tmp_path)
    shown = await dev.wait_output("worker serving", timeout=90)
    codec = f"http://127.0.0.1:{ui_port + 1}"
    assert f"codec server on {codec}" in shown
    (pid,) = server_processes(port)
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert command[command.index(b"--ui-codec-endpoint") + 1] == codec.encode()
    ui_origin = f"http://127.0.0.1:{ui_port}"
    preflight = await asyncio.to_thread(
        post, f"{codec}/decode", b"", {"Origin": ui_origin, "Access-Control-Request-Method": "POST"}, "OPTIONS"
    )
    assert preflight[0] == 204 and preflight[1]["Access-Control-Allow-Origin"] == ui_origin
    assert await dev.stop(signal.SIGINT) == 0
