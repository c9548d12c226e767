"""`der backfill --in-process` on a small fleet: yesterday and today materialized from a twin with a past.

The twin runs at 13:37 UTC on 2026-07-20 with two days of history (its clock crawls at a thousandth
of real speed, and the platform follows it, DER_CLOCK=twin). `der backfill --days 1` must leave
raw_payloads for both days and every vendor, interval_telemetry, meter_intervals and
reconciled_intervals materialized in the instance the UI reads, and today's gap check must
judge only the intervals that ended before 13:37.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from der_assets.cli import main
from der_assets.defs.telemetry.partitions import PULL_SOURCES
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.warehouse import connect_warehouse

from ._running import running_twin
from .test_twin_history import NOW, small_fleet

pytestmark = pytest.mark.slow
DAYS = ["2026-07-19", "2026-07-20"]


def _der(capsys, *args) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_backfill_materializes_the_twins_past(tmp_path, isolated_home, monkeypatch, capsys):
    fleet = small_fleet()
    engine = connect_warehouse(f"sqlite:///{isolated_home / 'warehouse.sqlite'}")
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("DER_CLOCK", "twin")
    monkeypatch.setenv("DER_ENPHASE_REQUESTS_PER_MINUTE", "100000")
    monkeypatch.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")

    # without a twin: one line, exit 2 (a usage error), nothing run
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(tmp_path / "none.json"))
    code, out, err = _der(capsys, "backfill", "--days", "1", "--in-process")
    assert code == 2 and err.startswith("der: error: no twin is running:") and "Traceback" not in err

    with running_twin(fleet, tmp_path / "twin", now=NOW, history_days=3) as (ready, ready_file):
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready_file))
        code, out, err = _der(capsys, "backfill", "--days", "1", "--in-process", "--log-progress")
        summary = json.loads(out)
    assert code == 0, err
    assert summary["dates"] == DAYS and summary["failed"] == 0
    assert summary["targeted"] == 2 * (len(PULL_SOURCES) + 3)
    assert "18/18 partitions done, 0 failed" in err

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        def materialized(name):
            return set(instance.get_materialized_partitions(dg.AssetKey(name)))

        raw = materialized("raw_payloads")
        assert {str(dg.MultiPartitionKey({"date": d, "source": s})) for d in DAYS for s in PULL_SOURCES} <= raw
        for name in ("interval_telemetry", "meter_intervals", "reconciled_intervals"):
            assert set(DAYS) <= materialized(name), name
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"der/backfill": summary["backfill_id"]}))
        assert len(runs) == 18 and all(r.is_success for r in runs)

        # today's gap check judged what had ended by the twin's 13:37, and left the rest to come
        today = _check(instance, "gap_pct", "2026-07-20")
        rows = read_day(engine, pd.Timestamp("2026-07-20T00:00Z"))
        ended = rows["interval_start"] + pd.to_timedelta(rows["interval_s"], unit="s") <= NOW
        five = rows[(rows.source == "enphase") & (rows.channel == "pv_kwh")]
        assert five["interval_s"].eq(300).all()
        # a 5-minute series: intervals ending by 13:37 start at 13:30 at the latest, 13 * 12 + 7 of them
        assert int(ended[five.index].sum()) == 163
        assert today["judged_intervals"] + today["not_collected_intervals"] == int(ended.sum())
        assert today["future_intervals"] == int((~ended).sum())
        assert today["as_of"].startswith("2026-07-20T13:37")
        # history APIs answered for yesterday; device-local APIs kept no past, so their series stay missing
        # rows but are not collected, not judged (and, today, until the first live poll): the table says which
        by_source = _table(_check(instance, "gap_pct", "2026-07-19")["by_source"])
        assert float(by_source["solaredge"]["gap_pct"]) < 1.0 and float(by_source["enphase"]["gap_pct"]) < 1.0
        assert by_source["sonnen"]["gap_pct"] == "None" and int(by_source["sonnen"]["not_collected_intervals"]) > 0
        # the past's AMI files were landed and read
        ami = read_day(engine, pd.Timestamp("2026-07-19T00:00Z"), ["ami"])
        assert ami["site_id"].nunique() >= 1

    # two days later, --missing-only leaves out the 19th and 20th (materialized, and no longer the last two)
    from der_assets.cli.backfill import backfill_plan, without_materialized
    from der_assets.simulator.service import ScaledClock

    later = {"clock": ScaledClock(pd.Timestamp("2026-07-22T08:00Z"), 1e-3).describe(),
             "history": {"start": "2026-07-17T00:00:00+00:00"}}
    plan = without_materialized(backfill_plan(later, 5))
    assert plan["dates"] == ["2026-07-17", "2026-07-18", "2026-07-19", "2026-07-20", "2026-07-21", "2026-07-22"]
    assert plan["partitions"]["interval_telemetry"] == ["2026-07-17", "2026-07-18", "2026-07-21", "2026-07-22"]
    assert len(plan["partitions"]["raw_payloads"]) == 4 * len(PULL_SOURCES)
    assert plan["notes"][-1] == "18 partitions already materialized are left out"


def _check(instance, name: str, partition: str) -> dict:
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("interval_telemetry"), name), limit=50)
    for record in records:
        evaluation = record.event.dagster_event.event_specific_data
        if evaluation.partition == partition:
            return {k: v.records if isinstance(v, dg.TableMetadataValue) else v.value
                    for k, v in evaluation.metadata.items()}
    raise AssertionError(f"no {name} evaluation for {partition}")


def _table(value) -> dict[str, dict]:
    return {r.data["source"]: r.data for r in value}


def test_the_plan_keeps_to_the_past_the_twin_serves(monkeypatch):
    """Three days asked of a twin whose past starts on the 18th: the 17th is left out, and said so."""
    from der_assets.cli.backfill import backfill_plan
    from der_assets.simulator.service import ScaledClock

    monkeypatch.setenv("DER_CLOCK", "twin")
    clock = ScaledClock(NOW, 1e-3).describe()
    plan = backfill_plan({"clock": clock, "history": {"start": "2026-07-18T00:00:00+00:00"}}, 3)
    assert plan["dates"] == ["2026-07-18", "2026-07-19", "2026-07-20"]
    assert plan["notes"] == ["the twin serves its past from 2026-07-18T00:00:00+00:00; the days before "
                             "2026-07-18 would be empty, so they are left out"]
    assert plan["partitions"]["raw_payloads"][:2] == ["2026-07-18|solaredge", "2026-07-18|enphase"]
    assert plan["partitions"]["reconciled_intervals"] == plan["dates"]
