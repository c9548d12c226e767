"""Utility CSV through Dagster: the twin's meters deliver CSV exports, the AMI inbox sensor lands them raw
(utility_csv / <mapping>), meter_intervals rebuilds the fall-back day, and the same meter-days sent as
Green Button XML give the same grid_kwh rows. Also how the inbox picks a file's site and mapping."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.connectors import utility_csv as csv_inbox
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import meter_intervals
from der_assets.defs.telemetry.sensors import ami_inbox_sensor
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.greenbutton import deliver_due_files
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.warehouse import connect_warehouse
from der_assets.warehouse.schema import raw_payloads

DAY = "2026-11-01"  # US fall-back: 06:00-07:00Z repeats 01:00 CDT/CST, 05:00-06:00Z 01:00 EDT/EST


def _ami_day(tmp_path, monkeypatch, name: str, fleet: pd.DataFrame, hub: TwinHub, share: float):
    """Deliver the twin's files into a fresh inbox, land them in a fresh SQLite warehouse, build DAY."""
    url = f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    engine = connect_warehouse(url)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / f"{name}_fleet.csv"))
    inbox = tmp_path / f"{name}_inbox"
    files = deliver_due_files(hub, inbox, csv_share=share)
    monkeypatch.setenv("DER_AMI_INBOX", str(inbox))
    resources = {"warehouse": WarehouseResource(url=url)}
    with dg.DagsterInstance.ephemeral() as instance:
        sensed = ami_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert DAY in {r.partition_key for r in sensed.run_requests}
        run = dg.materialize([meter_intervals], partition_key=DAY, resources=resources, instance=instance)
    assert run.success
    assert {e.check_name: e.passed for e in run.get_asset_check_evaluations()} == {"quarantined_files": True}
    with engine.connect() as conn:
        landed = pd.DataFrame(conn.execute(sa.select(raw_payloads.c.source, raw_payloads.c.endpoint,
                                                     raw_payloads.c.site_id)).all())
    rows = read_day(engine, pd.Timestamp(f"{DAY}T00:00Z"), ["ami"])
    engine.dispose()
    return files, landed, rows.sort_values(["site_id", "interval_start"]).reset_index(drop=True)


def test_twin_csv_through_meter_intervals_equals_green_button(tmp_path, monkeypatch):
    fleet = demo_fleet(8)  # 7 ComEd (Central) and 1 PECO (Eastern) sites
    clock = ManualClock(pd.Timestamp("2026-10-31T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(hours=24 * 4)

    files, landed, csv_rows = _ami_day(tmp_path, monkeypatch, "csv", fleet, hub, share=1.0)
    assert files and all(p.suffix == ".csv" for p in files)
    assert set(landed["source"]) == {"utility_csv"}
    sites = fleet.drop_duplicates("site_id").set_index("site_id")
    # each file read by its site's EDC mapping, the site told by the meter id in the file name
    expect = {s: {"ComEd": "comed", "PECO": "peco"}[e] for s, e in sites["edc"].items()}
    assert dict(zip(landed["site_id"], landed["endpoint"], strict=True)) == expect

    xml_files, xml_landed, xml_rows = _ami_day(tmp_path, monkeypatch, "xml", fleet, hub, share=0.0)
    assert all(p.suffix == ".xml" for p in xml_files) and set(xml_landed["source"]) == {"greenbutton"}

    per_site = csv_rows.groupby("site_id").size()
    assert len(per_site) == 8 and (per_site == 96).all()  # the UTC day, whole, across the repeated hour
    assert set(csv_rows["source"]) == {"ami"} and set(csv_rows["channel"]) == {"grid_kwh"}
    key = ["site_id", "channel", "interval_start", "interval_s", "quality"]
    assert csv_rows[key].equals(xml_rows[key])
    np.testing.assert_allclose(csv_rows["value"], xml_rows["value"], atol=1e-9, equal_nan=True)
    # and both are the twin's meter: a day's import minus export, to the Wh the registers round to
    site = per_site.index[0]
    truth = hub.window(site, pd.Timestamp(f"{DAY}T00:00Z"), pd.Timestamp(f"{DAY}T00:00Z") + pd.Timedelta(days=1))
    assert csv_rows.loc[csv_rows.site_id == site, "value"].sum() == pytest.approx(truth["grid_kwh"].sum(), abs=0.1)


PECO_FILE = (b"Name,X\nAddress,Y\nAccount Number,1776000000\nService,Service 1\n\n"
             b"TYPE,DATE,START TIME,END TIME,USAGE (kWh),NOTES\nElectric usage,2023-07-04,00:00,00:59,0.29,\n")


def test_site_and_mapping_choice(monkeypatch):
    meters, accounts, edc = {"PE123": "S-1"}, {"1776000000": "S-2"}, {"S-1": "PECO", "S-2": "Unknown EDC"}
    monkeypatch.delenv(csv_inbox.MAPPING_ENV, raising=False)
    # the meter id in the name, and the site's EDC
    assert csv_inbox.choose("x_PE123_2023-07-04.csv", PECO_FILE, meters=meters, accounts=accounts,
                            edc_of_site=edc) == csv_inbox.Choice("S-1", "peco", "registry edc")
    # the preamble's account number, and the header signature when the EDC names no mapping
    assert csv_inbox.choose("peco_download.csv", PECO_FILE, meters=meters, accounts=accounts,
                            edc_of_site=edc) == csv_inbox.Choice("S-2", "peco", "header signature")
    odd = b"Meter,When,kWh\nM9,2023-07-04 00:00,0.1\n"
    unmapped = csv_inbox.choose("odd.csv", odd, meters=meters, accounts=accounts, edc_of_site=edc)
    assert unmapped.site_id is None and unmapped.mapping == csv_inbox.UNMAPPED and "is unset" in unmapped.how
    monkeypatch.setenv(csv_inbox.MAPPING_ENV, "sce")
    assert csv_inbox.choose("odd.csv", odd, meters=meters, accounts=accounts, edc_of_site=edc).mapping == "sce"
    monkeypatch.setenv(csv_inbox.MAPPING_ENV, "nope")
    with pytest.raises(ValueError, match="DER_AMI_CSV_MAPPING='nope' is not a shipped mapping"):
        csv_inbox.choose("odd.csv", odd, meters=meters, accounts=accounts, edc_of_site=edc)
