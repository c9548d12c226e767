"""Green Button Connect in Dagster: the sensor pulls the custodian `der simulate` serves for the
utilities on Connect (settings from the twin's ready file), lands each answer raw as greenbutton/espi, asks for
meter_intervals of the days landed at the AMI priority, and meter_intervals materializes them."""

from __future__ import annotations

import json
import os

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import meter_intervals
from der_assets.defs.telemetry.greenbutton_connect import greenbutton_connect_sensor
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.warehouse.schema import raw_payloads



@pytest.fixture
def fleet(engine, tmp_path):
    fleet = demo_fleet(3)
    fleet.loc[fleet["site_id"] == "S-00003", "edc"] = "PECO"  # one site's utility offers Connect
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    return fleet


def test_sensor_lands_connect_and_meter_intervals_materializes(engine, warehouse_url, fleet, tmp_path, monkeypatch):
    resources = {"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource()}
    clock = ManualClock(pd.Timestamp("2026-07-14T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(hours=24 * 4)
    creds = make_credentials(0)  # the custodian `der simulate` serves, and its ready file
    with serving({"greenbutton_connect": build_http_apps(hub, creds)["greenbutton_connect"]}) as urls:
        ready = tmp_path / "twin_ready.json"
        ready.write_text(json.dumps({"http": urls, "credentials": creds}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        for name in [n for n in os.environ if n.startswith("DER_GBC_")]:
            monkeypatch.delenv(name)
        with dg.DagsterInstance.ephemeral() as instance:
            monkeypatch.delenv("DER_AMI_CONNECT_EDCS", raising=False)
            off = greenbutton_connect_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            assert isinstance(off, dg.SkipReason) and "inbox" in off.skip_message  # the default: inbox only

            monkeypatch.setenv("DER_AMI_CONNECT_EDCS", "peco")
            context = dg.build_sensor_context(instance=instance, resources=resources)
            result = greenbutton_connect_sensor(context)
            keys = sorted({r.partition_key for r in result.run_requests})
            assert "2026-07-15" in keys
            assert {r.tags["dagster/priority"] for r in result.run_requests} == {"-2"}
            again = greenbutton_connect_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                                       cursor=context.cursor))
            assert isinstance(again, dg.SkipReason) and "nothing new" in again.skip_message

            with engine.connect() as conn:
                landed = conn.execute(sa.select(raw_payloads.c.source, raw_payloads.c.endpoint,
                                                raw_payloads.c.site_id)).all()
            assert landed == [("greenbutton", "espi", "S-00003")]  # the ComEd meters stay with the inbox

            run = dg.materialize([meter_intervals], partition_key="2026-07-15", resources=resources, instance=instance)
    assert run.success
    assert {e.check_name: e.passed for e in run.get_asset_check_evaluations()} == {"quarantined_files": True}
    rows = read_day(engine, pd.Timestamp("2026-07-15T00:00Z"), ["ami"])
    mine = rows[rows["site_id"] == "S-00003"]
    assert len(mine) == 96 and mine["value"].notna().all()  # every quarter-hour of the UTC day
    truth = hub.window("S-00003", pd.Timestamp("2026-07-15T00:00Z"), pd.Timestamp("2026-07-16T00:00Z"))
    assert mine["value"].sum() == pytest.approx(truth["grid_kwh"].sum(), abs=0.1)  # whole-Wh registers
    with engine.connect() as conn:
        assert conn.execute(sa.select(raw_payloads.c.status)).scalar_one() == "parsed"


def test_each_utility_on_connect_has_its_own_custodian(monkeypatch, tmp_path):
    """DER_GBC_<EDC>_* over DER_GBC_*: PECO's custodian and client are its own, ComEd takes the
    shared ones; each custodian keeps its own token store."""
    from der_assets.connectors.greenbutton_connect import ConnectClient
    from der_assets.defs.telemetry.greenbutton_connect import custodians

    monkeypatch.setenv("DER_TWIN_READY_FILE", str(tmp_path / "no_twin.json"))
    for name, value in {"DER_GBC_BASE_URL": "https://gbc.comed.example/DataCustodian", "DER_GBC_CLIENT_ID": "shared",
                        "DER_GBC_CLIENT_SECRET": "shared-secret", "DER_GBC_REFRESH_TOKEN": "shared-refresh",
                        "DER_GBC_PECO_BASE_URL": "https://api.peco.example/GreenButtonConnect",
                        "DER_GBC_PECO_CLIENT_ID": "peco-client", "DER_GBC_PECO_CLIENT_SECRET": "peco-secret",
                        "DER_GBC_PECO_REFRESH_TOKEN": "peco-refresh"}.items():
        monkeypatch.setenv(name, value)
    registry = demo_fleet(9)  # S-00008 and S-00009 are PECO, the rest ComEd
    groups = custodians(registry, frozenset({"PECO", "COMED"}))
    by_url = {s.base_url: (s, sorted(site_of.values())) for s, site_of, _ in groups}
    peco, peco_sites = by_url["https://api.peco.example/GreenButtonConnect"]
    comed, comed_sites = by_url["https://gbc.comed.example/DataCustodian"]
    assert (peco.client_id, peco.refresh_token, peco_sites) == ("peco-client", "peco-refresh", ["S-00008", "S-00009"])
    assert (comed.client_id, comed.refresh_token, len(comed_sites)) == ("shared", "shared-refresh", 7)
    stores = {ConnectClient(s).store.path.name for s in (peco, comed)}
    assert stores == {"tokens_api.peco.example_GreenButtonConnect.json", "tokens_gbc.comed.example_DataCustodian.json"}
    only_peco = custodians(registry, frozenset({"PECO"}))
    assert [sorted(site_of.values()) for _, site_of, _ in only_peco] == [["S-00008", "S-00009"]]
