"""Namespace setup: the job search attributes and 7-day retention (idempotent).

Layer: operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client

from .._wire import SA_FUNCTION, SA_SCHEDULED_TIME, SA_STATE

#: How long finished jobs stay queryable.
RETENTION = timedelta(days=7)

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    SA_FUNCTION.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SA_STATE.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SA_SCHEDULED_TIME.name: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


class SetupError(Exception):
    """The namespace cannot be set up as kitcn needs it (an attribute exists with another type)."""


@dataclass
class SetupReport:
    """What :func:`setup_namespace` changed."""

    namespace: str
    added_search_attributes: list[str] = field(default_factory=list)
    retention_changed: bool = False


async def setup_namespace(client: Client, *, retention: timedelta = RETENTION) -> SetupReport:
    """Register ``KitcnFunction``, ``KitcnState``, ``KitcnScheduledTime`` and set retention.

    Safe to run again: it changes only what is missing or different. An attribute that
    exists with another type is a :class:`SetupError` (Temporal cannot change an attribute's type).
    """
    namespace = client.namespace
    report = SetupReport(namespace)
    # Every call is idempotent: the SDK retries it on a transient fault (a server that just
    # refreshed its namespace cache may cancel one).
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), retry=True
    )
    known = {**existing.system_attributes, **existing.custom_attributes}
    missing = {}
    for name, kind in SEARCH_ATTRIBUTES.items():
        if name not in known:
            missing[name] = kind
        elif known[name] != kind:
            raise SetupError(
                f"search attribute {name} exists in namespace {namespace!r} with type "
                f"{IndexedValueType.Name(known[name])}, expected {IndexedValueType.Name(kind)}"
            )
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        report.added_search_attributes = sorted(missing)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), retry=True
    )
    current = described.config.workflow_execution_retention_ttl.ToTimedelta()
    if current != retention:
        config = NamespaceConfig()
        config.CopyFrom(described.config)  # send the rest of the config back unchanged
        config.workflow_execution_retention_ttl.FromTimedelta(retention)
        await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(namespace=namespace, config=config), retry=True
        )
        report.retention_changed = True
    return report
