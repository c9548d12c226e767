"""The asset graph is the data flow: every table an asset reads is a declared dependency."""

from __future__ import annotations

import dagster as dg
import pytest


@pytest.fixture(scope="module")
def graph():
    from der_assets.definitions import defs

    return defs().get_repository_def().asset_graph


def _parents(graph, name: str) -> set[str]:
    return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}


def test_declared_dependencies(graph):
    assert _parents(graph, "raw_payloads") == {"asset_registry"}
    assert _parents(graph, "interval_telemetry") == {"asset_registry", "raw_payloads"}
    assert _parents(graph, "meter_intervals") == {"asset_registry"}
    assert _parents(graph, "site_availability") >= {"asset_registry", "interval_telemetry", "device_commands"}
    assert _parents(graph, "capacity_estimate") == {"asset_registry", "site_availability"}
    assert _parents(graph, "enrollment_package") == {"asset_registry", "capacity_estimate"}
    assert _parents(graph, "iso_statement") == {"asset_registry"}
    assert _parents(graph, "event_baselines") == {"asset_registry", "meter_intervals", "reconciled_intervals"}
    assert _parents(graph, "settlement_reconciliation") == {"asset_registry", "iso_statement", "event_baselines",
                                                            "meter_intervals", "reconciled_intervals"}
    assert _parents(graph, "review_queue") == {"interval_telemetry", "meter_intervals"}


def test_the_registry_is_upstream_of_telemetry_and_capacity(graph):
    upstream = dg.AssetSelection.assets("interval_telemetry").upstream().resolve(graph)
    assert dg.AssetKey("asset_registry") in upstream
    downstream = {k.to_user_string() for k in dg.AssetSelection.assets("asset_registry").downstream().resolve(graph)}
    assert downstream >= {"raw_payloads", "interval_telemetry", "meter_intervals", "reconciled_intervals",
                          "site_availability", "capacity_estimate", "enrollment_package", "event_baselines",
                          "settlement_reconciliation", "review_queue"}


def test_a_settled_month_depends_on_its_meter_days_and_the_lookback(graph):
    """A month's baselines read 70 days of AMI before it: its meter days run from three months back."""
    baselines = graph.get(dg.AssetKey("event_baselines"))
    meter = dg.AssetKey("meter_intervals")
    mapping = baselines.partition_mappings[meter]
    upstream_def = graph.get(meter).partitions_def
    subset = mapping.get_upstream_mapped_partitions_result_for_partitions(
        baselines.partitions_def.subset_with_partition_keys(["2026-07-01"]), baselines.partitions_def,
        upstream_def).partitions_subset
    keys = sorted(subset.get_partition_keys())
    assert (keys[0], keys[-1], len(keys)) == ("2026-04-01", "2026-07-31", 122)
