"""docs/semantics.md §7: what KitcnPlugin sets on a client, and what it leaves as the user chose."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultPayloadConverter
from temporalio.worker import Worker, WorkerTuner

from conftest import make_app
from kitcn_temporal import KitcnPlugin


class OwnConverter(DefaultPayloadConverter):
    """A payload converter of the user's own."""


def test_the_plugin_puts_pydantic_in_place_of_the_default_converter() -> None:
    config: Any = {"data_converter": DataConverter.default}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configured = KitcnPlugin(make_app()).configure_client(config)
    assert issubclass(configured["data_converter"].payload_converter_class, PydanticPayloadConverter)


def test_the_plugin_keeps_a_converter_of_the_users_own_and_says_what_it_must_handle() -> None:
    config: Any = {"data_converter": DataConverter(payload_converter_class=OwnConverter)}
    with pytest.warns(UserWarning, match="keeps the client's payload converter OwnConverter.*pydantic"):
        configured = KitcnPlugin(make_app()).configure_client(config)
    assert configured["data_converter"].payload_converter_class is OwnConverter


async def test_a_worker_gets_twice_as_many_workflow_task_slots_as_local_activity_slots(client: Client) -> None:
    """A job's query or mutation holds its workflow task slot while it runs (a local activity in
    the workflow task): the spare slots keep eager starts and timers going meanwhile."""

    def slots(**options: Any) -> Any:
        active = Worker(client, task_queue=f"slots-{uuid.uuid4().hex[:6]}", **options).config(active_config=True)
        return active.get("max_concurrent_workflow_tasks"), active.get("tuner")

    assert slots() == (2 * 100, None)  # the SDK's 100 local activity slots
    assert slots(max_concurrent_local_activities=30) == (60, None)
    assert slots(max_concurrent_workflow_tasks=7) == (7, None)  # the worker's own choice stands
    tuner = WorkerTuner.create_fixed(workflow_slots=5, activity_slots=5, local_activity_slots=5)
    assert slots(tuner=tuner) == (None, tuner)
