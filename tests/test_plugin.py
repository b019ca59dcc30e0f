"""docs/semantics.md §7: what KitcnPlugin sets on a client, and what it leaves as the user chose."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultPayloadConverter

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
