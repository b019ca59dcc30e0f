"""``setup``: search attributes and 7-day retention, idempotent."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from kitcn_temporal import setup_namespace


async def test_setup_sets_seven_day_retention_and_is_idempotent(client) -> None:
    again = await setup_namespace(client)  # the session fixture already ran it once
    assert again.added_search_attributes == [] and again.retention_changed is False
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=7)


async def test_setup_restores_retention(client) -> None:
    changed = await setup_namespace(client, retention=timedelta(days=3))
    assert changed.retention_changed
    restored = await setup_namespace(client)
    assert restored.retention_changed
