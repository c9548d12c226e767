"""Raw payloads are kept, content-addressed, before parsing; failures are quarantined, not lost."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa

from der_assets.connectors.landing import land, mark, payload_path, read_payload
from der_assets.warehouse.schema import raw_payloads

RECEIVED = dt.datetime(2026, 7, 16, 0, 5, tzinfo=dt.UTC)


def test_land_keeps_bytes_and_indexes_the_receipt(engine, isolated_home):
    body = b'{"energyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR"}}'
    landed = land(engine, body, source="solaredge", endpoint="energyDetails", site_id="S-00001",
                  received_at=RECEIVED, window_start=RECEIVED - dt.timedelta(days=1), window_end=RECEIVED)
    assert landed.sha256 == hashlib.sha256(body).hexdigest()
    assert landed.path == isolated_home / "raw" / landed.sha256[:2] / landed.sha256
    assert read_payload(landed.sha256) == body
    with engine.connect() as conn:
        row = conn.execute(sa.select(raw_payloads)).mappings().one()
    assert (row["source"], row["endpoint"], row["site_id"], row["n_bytes"], row["status"]) == (
        "solaredge", "energyDetails", "S-00001", len(body), "landed")


def test_same_bytes_twice_are_stored_once_and_indexed_twice(engine):
    first = land(engine, b"abc", source="sma", endpoint="measurements", received_at=RECEIVED)
    second = land(engine, b"abc", source="sma", endpoint="measurements", received_at=RECEIVED + dt.timedelta(hours=1))
    assert first.path == second.path and first.payload_id != second.payload_id
    assert len(list(first.path.parent.iterdir())) == 1


def test_quarantine_keeps_the_payload_and_the_error(engine):
    landed = land(engine, b'{"truncated": ', source="enphase", endpoint="production_meter", received_at=RECEIVED)
    mark(engine, landed.payload_id, "quarantined", "enphase production_meter: truncated JSON at byte 14")
    with engine.connect() as conn:
        row = conn.execute(sa.select(raw_payloads)).mappings().one()
    assert row["status"] == "quarantined" and "truncated JSON" in row["error"]
    assert payload_path(landed.sha256).exists()


def test_corruption_on_disk_is_detected(engine):
    landed = land(engine, b"original", source="sma", endpoint="measurements", received_at=RECEIVED)
    landed.path.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="corrupt"):
        read_payload(landed.sha256)


def test_naive_received_at_is_refused(engine):
    with pytest.raises(ValueError, match="timezone-aware"):
        land(engine, b"x", source="sma", endpoint="measurements", received_at=dt.datetime(2026, 7, 16))
