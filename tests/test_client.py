"""docs/semantics.md §7: KitcnClient direct calls, auth, public_only and environment configuration."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from helpers import settle_visibility, token, wait_state
from kitcn_temporal import App, CRPCError, KitcnClient, create_caller
from testapp import authz, producers, shapes, targets
from testapp.probe import RUNS


async def test_direct_calls_return_the_output(kitcn: KitcnClient) -> None:
    result = await create_caller(kitcn, shapes).add(x=2, y=3)
    assert isinstance(result, shapes.Sum) and result.total == 5


async def test_direct_calls_are_not_listed_as_scheduled_functions(kitcn: KitcnClient) -> None:
    tok = token()
    await create_caller(kitcn, targets).touch(token=tok)
    await settle_visibility(kitcn, tok)
    rows = await kitcn.system.list(name="targets.touch", limit=1000)
    assert [r for r in rows if r.args.get("token") == tok] == []


async def test_crpc_error_survives_the_trip_with_code_message_and_data(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, producers).refuse(token="o-42")
    assert err.value.code == "NOT_FOUND"
    assert err.value.message == "no order o-42"
    assert err.value.data == {"token": "o-42"}


async def test_auth_identity_reaches_direct_calls(kitcn: KitcnClient) -> None:
    signed_in = kitcn.with_auth({"user": "ada"})
    assert await create_caller(signed_in, authz).whoami(token=token()) == "ada"
    assert await create_caller(signed_in, authz).my_name() == "ada"
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, authz).whoami(token=token())
    assert err.value.code == "UNAUTHORIZED"


async def test_auth_is_not_propagated_to_scheduled_functions(kitcn: KitcnClient) -> None:
    signed_in = kitcn.with_auth({"user": "ada"})
    job_id = await create_caller(signed_in, authz).schedule.now.whoami(token=token())
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "failed"
    assert job.state.error == "UNAUTHORIZED: sign in first"


async def test_scheduled_functions_see_no_auth(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn.with_auth({"user": "ada"}), targets).schedule.now.touch(token=tok)
    await wait_state(kitcn, job_id)
    [(_, _, auth)] = RUNS[tok]
    assert auth is None


async def test_with_auth_needs_a_serialisable_identity(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="JSON-serialisable"):
        kitcn.with_auth(object())


async def test_public_only_client_refuses_private_procedures(client: Client, app: App, kitcn) -> None:
    public = KitcnClient(client, app, public_only=True)
    with pytest.raises(CRPCError) as err:
        await create_caller(public, targets).schedule.now.touch(token=token())
    assert err.value.code == "FORBIDDEN" and "targets.touch" in err.value.message
    with pytest.raises(CRPCError, match="FORBIDDEN"):
        await create_caller(public, targets).touch(token=token())
    with pytest.raises(CRPCError, match="FORBIDDEN"):
        await public.scheduler.run_after(0, "targets.touch", {"token": token()})
    assert (await create_caller(public, shapes).add(x=1, y=1)).total == 2
    job_id = await create_caller(public, targets).schedule.now.take_payload(token=token())
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_connect_reads_temporal_environment_configuration(temporal_server, app: App, kitcn, monkeypatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_server.address)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", "/nonexistent/temporal.toml")
    connected = await KitcnClient.connect(app)
    assert connected.client.namespace == "default"
    assert connected.client.service_client.config.target_host == temporal_server.address
    assert (await create_caller(connected, shapes).add(x=4, y=4)).total == 8
