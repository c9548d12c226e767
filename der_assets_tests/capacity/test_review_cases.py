"""Outside-review cases for `der capacity estimate`: hand-made files, every number computed by hand from
DESIGN.md "Capacity contract" (deliverable formula, P50/P90, risk model, days in the period, local-time
windows across DST, silent batteries, losses and the file outputs)."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pandas as pd
import pytest

from der_assets.cli import main

REG_COLS = ["subscriber_id", "site_id", "timezone", "iso", "zone", "resource_id", "interconnection_type",
            "export_allowed", "reserve_floor_pct", "max_events_per_month", "max_event_hours", "opt_out",
            "site_status", "device_id", "device_type", "rated_kw", "capacity_kwh", "device_status"]
TEL_COLS = ["site_id", "device_id", "source", "channel", "interval_start", "interval_s", "value", "quality",
            "received_at", "revision"]
KEYS = ["iso", "delivery_year", "accreditation_class", "class_rating", "class_rating_source", "class_rating_verified",
        "n_sites", "n_days", "nameplate_kw", "deliverable_p50_kw", "deliverable_p90_kw", "accredited_p90_kw",
        "unavailable_site_days", "losses_kw", "commit_kw", "expected_revenue_usd", "expected_penalty_usd",
        "recommended_commit_kw", "warnings"]
LOSS_KEYS = ["reserve", "soc", "power", "non_export", "offline", "opt_out"]


def bat(site, rated, cap, *, tz="America/New_York", reserve=0, export="true", opt_out="false", status="active",
        dev=None, dstatus="active", max_h="", max_ev=""):
    return dict(subscriber_id="U" + site, site_id=site, timezone=tz, iso="PJM", zone="PECO", resource_id="",
                interconnection_type="nem", export_allowed=export, reserve_floor_pct=reserve,
                max_events_per_month=max_ev, max_event_hours=max_h, opt_out=opt_out, site_status=status,
                device_id=dev or site + "-B", device_type="battery", rated_kw=rated, capacity_kwh=cap,
                device_status=dstatus)


def other(base, device_id, device_type, rated=""):
    return dict(base, device_id=device_id, device_type=device_type, rated_kw=rated, capacity_kwh="")


def utc(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def row(site, device, channel, start, value, interval_s=900, quality="measured", revision=0):
    return dict(site_id=site, device_id=device, source="simulator", channel=channel,
                interval_start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), interval_s=interval_s,
                value="" if value is None else value, quality="missing" if value is None else quality,
                received_at="2026-10-01T00:00:00Z", revision=revision)


def soc_end(site, at, pct, device=None, interval_s=900, **kw):
    """The soc_pct row whose interval ENDS at `at` (soc_pct is the SoC at interval end)."""
    return row(site, device or site + "-B", "soc_pct", at - dt.timedelta(seconds=interval_s), pct, interval_s, **kw)


def series(site, device, channel, start, values, interval_s=900):
    return [row(site, device, channel, start + dt.timedelta(seconds=i * interval_s), v, interval_s)
            for i, v in enumerate(values)]


def write(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    return path


def run(capsys, tmp_path, reg_rows, tel_rows, *args):
    reg = write(tmp_path / "reg.csv", REG_COLS, reg_rows)
    tel = write(tmp_path / "tel.csv", TEL_COLS, tel_rows)
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "estimate", "--registry", str(reg), "--telemetry", str(tel), "--iso", "pjm",
              "--delivery-year", "2027/2028", "--class", "demand_resource", "--out", str(tmp_path / "out"),
              *map(str, args)])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    summary = json.loads(out)
    sites = pd.read_csv(tmp_path / "out" / "sites.csv")
    return summary, sites


def by_site_day(sites):
    return {(r.site_id, r.day): (round(r.deliverable_kw, 4), r.reason) for r in sites.itertuples()}


def test_formula_caps_unavailable_and_losses(tmp_path, capsys):
    """One day, 2 h window, efficiency 0.81 (sqrt 0.9): min(rated, (soc - reserve) kWh * 0.9 / 2)."""
    reg = [bat("A", 5, 20, reserve=20),                 # (12 - 4) * 0.9 / 2 = 3.6
           bat("B", 10, 10, reserve=10),                # (10 - 1) * 0.45 = 4.05; power 10 - 4.5, reserve 0.45
           bat("C", 5, 20, reserve=30),                 # SoC 20 % < reserve 30 %: 0
           bat("D", 5, 20, export="false"),             # battery 5, capped at its smallest net load, 1 kW
           bat("E", 5, 20, status="suspended"),         # not active
           bat("F", 6, 20, opt_out="true"),             # opted out
           bat("G", 7, 20),                             # silent at window start (reports 15 min earlier and later)
           bat("H", 8, 20),                             # no telemetry at all
           bat("I", 3, 10, reserve=10, dev="I-B1"),     # (5 - 1) * 0.45 = 1.8
           bat("I", 2, 10, reserve=10, dev="I-B2"),     # min(2, 9 * 0.45) = 2
           bat("J", 4, 20, max_h=1),                    # max_event_hours 1 < 2 h window
           bat("K", 2, 20, dstatus="offline")]          # device offline
    reg += [other(reg[3], "D-P", "pv_inverter", 5), other(reg[3], "D-M", "meter")]
    ws = utc("2026-07-15T19:00")  # 15:00 EDT
    q = dt.timedelta(minutes=15)
    tel = [soc_end("A", ws, 60), soc_end("B", ws, 100), soc_end("C", ws, 20), soc_end("D", ws, 100),
           soc_end("E", ws, 100), soc_end("F", ws, 100), soc_end("G", ws - q, 90), row("G", "G-B", "soc_pct", ws, 90),
           soc_end("I", ws, 50, device="I-B1"), soc_end("I", ws, 100, device="I-B2"), soc_end("J", ws, 100),
           soc_end("K", ws, 100)]
    # D: load kWh per 15 min (kW = 4 x kWh) 4, 3.2, 2, 3.6, 4.8, 4, 4, 4 in the window; the rows just before and
    # after it are 0 and must be ignored. PV 0.25 kWh = 1 kW, so the smallest net load is 2 - 1 = 1 kW
    tel += series("D", "D-M", "load_kwh", ws - q, [0.0, 1.0, 0.8, 0.5, 0.9, 1.2, 1.0, 1.0, 1.0, 0.0])
    tel += series("D", "D-P", "pv_kwh", ws - q, [0.25] * 10)
    s, sites = run(capsys, tmp_path, reg, tel, "--months", "7", "--duration-h", "2", "--efficiency", "0.81")
    assert list(s) == KEYS and list(s["losses_kw"]) == LOSS_KEYS
    assert list(sites.columns) == ["site_id", "zone", "day", "deliverable_kw", "reason"]
    assert (tmp_path / "out" / "distribution.png").read_bytes()[:4] == b"\x89PNG"
    got = by_site_day(sites)
    day = "2026-07-15"
    assert got == {("A", day): (3.6, "soc"), ("B", day): (4.05, "power"), ("C", day): (0.0, "soc"),
                   ("D", day): (1.0, "non_export"), ("E", day): (0.0, "not_active"), ("F", day): (0.0, "opt_out"),
                   ("G", day): (0.0, "offline"), ("H", day): (0.0, "no_telemetry"), ("I", day): (3.8, "soc"),
                   ("J", day): (0.0, "event_hours"), ("K", day): (0.0, "offline")}
    assert s["n_sites"] == 11 and s["n_days"] == 1 and s["nameplate_kw"] == 62.0
    assert s["deliverable_p50_kw"] == s["deliverable_p90_kw"] == 12.45
    assert s["accredited_p90_kw"] == pytest.approx(12.45 * 0.92)
    assert s["unavailable_site_days"] == 7
    assert s["losses_kw"] == {"reserve": 0.45, "soc": 7.6, "power": 5.5, "non_export": 4.0, "offline": 22.0,
                              "opt_out": 10.0}
    # default commitment is P90; revenue = 12.45 * 0.92 * 333.44 * 366 / 1000
    assert s["commit_kw"] == 12.45 and s["expected_penalty_usd"] == 0.0
    assert s["expected_revenue_usd"] == 1397.84
    assert s["recommended_commit_kw"] == 12.45


def _quantile_case(tmp_path, capsys, n, step, *extra):
    """One site, rated 100 kW / 100 kWh, no reserve, efficiency 1, 1 h: deliverable = SoC % in kW."""
    import random

    values = [step * (i + 1) for i in range(n)]
    random.Random(1).shuffle(values)
    tel = [soc_end("A", utc(f"2026-07-{d + 1:02d}T19:00"), v) for d, v in enumerate(values)]
    return run(capsys, tmp_path, [bat("A", 100, 100)], tel, "--months", "7", "--efficiency", "1",
               "--capacity-price-usd-mw-day", "100", "--penalty-usd-mwh", "5000", "--event-hours", "30", *extra)


# revenue slope: 0.92 * 100 * 366 / 1000 = 33.672 $/kW; penalty slope: 5000 * 30 / 1000 = 150 $/kW x share of days
# short. revenue - penalty rises while the share of days below Q is under 33.672 / 150 = 0.2245.
def test_p50_p90_and_risk_on_10_days(tmp_path, capsys):
    s, _ = _quantile_case(tmp_path, capsys, 10, 10)  # totals 10, 20, ..., 100
    assert s["n_days"] == 10
    assert s["deliverable_p90_kw"] == 20.0   # met or exceeded on 9 of 10 days
    assert s["deliverable_p50_kw"] == 60.0   # met or exceeded on 5 of 10 days (60..100)
    assert s["accredited_p90_kw"] == pytest.approx(18.4)
    assert s["commit_kw"] == 20.0
    assert s["expected_revenue_usd"] == pytest.approx(673.44)   # 20 * 33.672
    assert s["expected_penalty_usd"] == pytest.approx(150.0)    # 150 * mean shortfall (10 / 10)
    assert s["recommended_commit_kw"] == 30.0                   # 2 of 10 days below 30: 0.2 < 0.2245 < 0.3


def test_commit_flag_on_10_days(tmp_path, capsys):
    s, _ = _quantile_case(tmp_path, capsys, 10, 10, "--commit-kw", "45")
    assert s["commit_kw"] == 45.0
    assert s["expected_revenue_usd"] == pytest.approx(1515.24)  # 45 * 33.672
    assert s["expected_penalty_usd"] == pytest.approx(1200.0)   # 150 * (35 + 25 + 15 + 5) / 10


def test_p50_p90_and_risk_on_20_days(tmp_path, capsys):
    s, _ = _quantile_case(tmp_path, capsys, 20, 5)  # totals 5, 10, ..., 100
    assert s["n_days"] == 20
    assert s["deliverable_p90_kw"] == 15.0   # met or exceeded on 18 of 20 days
    assert s["deliverable_p50_kw"] == 55.0   # met or exceeded on 10 of 20 days
    assert s["expected_revenue_usd"] == pytest.approx(505.08)   # 15 * 33.672
    assert s["expected_penalty_usd"] == pytest.approx(112.5)    # 150 * (10 + 5) / 20
    assert s["recommended_commit_kw"] == 25.0                   # 4 of 20 below 25: 0.2; 5 of 20 below 30: 0.25


@pytest.mark.parametrize("year, days", [("2026/2027", 365), ("2027/2028", 366), ("2028/2029", 365)])
def test_days_in_delivery_period(tmp_path, capsys, year, days):
    reg = write(tmp_path / "reg.csv", REG_COLS, [bat("A", 100, 100)])
    tel = write(tmp_path / "tel.csv", TEL_COLS, [soc_end("A", utc("2026-07-01T19:00"), 50)])
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "estimate", "--registry", str(reg), "--telemetry", str(tel), "--iso", "pjm",
              "--delivery-year", year, "--class", "demand_resource", "--months", "7", "--class-rating", "0.5",
              "--capacity-price-usd-mw-day", "100", "--penalty-usd-mwh", "1", "--event-hours", "1", "--commit-kw", "10"])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    assert json.loads(out)["expected_revenue_usd"] == pytest.approx(10 * 0.5 * 100 * days / 1000)


def test_local_window_across_spring_dst_and_time_zones(tmp_path, capsys):
    """15:00 local: New York 20:00Z on 2027-03-13 (EST), 19:00Z from 03-14 (EDT); Phoenix 22:00Z always."""
    reg = [bat("NY", 100, 100), bat("PHX", 100, 100, tz="America/Phoenix"), bat("NE", 5, 100, export="false")]
    reg.append(other(reg[2], "NE-M", "meter"))
    tel = []
    for d in ("2027-03-13", "2027-03-14", "2027-03-15"):
        tel += [soc_end("NY", utc(d + "T19:00"), 30), soc_end("NY", utc(d + "T20:00"), 70),
                soc_end("PHX", utc(d + "T22:00"), 50), soc_end("NE", utc(d + "T19:00"), 100),
                soc_end("NE", utc(d + "T20:00"), 100)]
        tel += series("NE", "NE-M", "load_kwh", utc(d + "T19:00"), [2.0] * 4 + [0.5] * 4)  # 8 kW, then 2 kW
    s, sites = run(capsys, tmp_path, reg, tel, "--months", "3", "--efficiency", "1")
    got = by_site_day(sites)
    assert [got[("NY", d)][0] for d in ("2027-03-13", "2027-03-14", "2027-03-15")] == [70.0, 30.0, 30.0]
    assert [got[("PHX", d)][0] for d in ("2027-03-13", "2027-03-14", "2027-03-15")] == [50.0, 50.0, 50.0]
    assert [got[("NE", d)][0] for d in ("2027-03-13", "2027-03-14", "2027-03-15")] == [2.0, 5.0, 5.0]
    s, sites = run(capsys, tmp_path, reg, tel, "--months", "3", "--efficiency", "1", "--weekdays")
    assert s["n_days"] == 1 and list(sites["day"].unique()) == ["2027-03-15"]  # Sat 13, Sun 14 left out


def test_local_month_and_weekday_at_22h(tmp_path, capsys):
    """22:00 EDT is 02:00Z the next UTC day: months and weekdays are read in local time."""
    tel = [soc_end("NY", utc(d + "T02:00"), v) for d, v in
           (("2026-07-01", 11), ("2026-07-04", 22), ("2026-07-05", 33), ("2026-08-01", 44))]
    reg = [bat("NY", 100, 100)]
    _, sites = run(capsys, tmp_path, reg, tel, "--months", "7", "--window-start", "22:00", "--efficiency", "1")
    assert by_site_day(sites) == {("NY", "2026-07-03"): (22.0, "soc"), ("NY", "2026-07-04"): (33.0, "soc"),
                                  ("NY", "2026-07-31"): (44.0, "soc")}  # June 30 local is out
    _, sites = run(capsys, tmp_path, reg, tel, "--months", "7", "--window-start", "22:00", "--efficiency", "1",
                   "--weekdays")
    assert list(sites["day"]) == ["2026-07-03", "2026-07-31"]  # Fridays locally, Saturdays in UTC


def test_dst_nonexistent_and_repeated_window_start(tmp_path, capsys):
    reg = [bat("NY", 100, 100)]
    tel = []
    for d in ("2027-03-13", "2027-03-14", "2027-03-15"):
        tel += [soc_end("NY", utc(d + "T06:30"), 10, interval_s=300), soc_end("NY", utc(d + "T07:00"), 20, interval_s=300),
                soc_end("NY", utc(d + "T07:30"), 40, interval_s=300)]
    # 02:30: EST 07:30Z; on 03-14 it does not exist and moves forward to 03:00 EDT = 07:00Z; then EDT 06:30Z
    _, sites = run(capsys, tmp_path, reg, tel, "--months", "3", "--window-start", "02:30", "--efficiency", "1")
    assert list(sites["deliverable_kw"]) == [40.0, 20.0, 10.0]
    tel = []
    for d in ("2027-11-06", "2027-11-07", "2027-11-08"):
        tel += [soc_end("NY", utc(d + "T05:30"), 15), soc_end("NY", utc(d + "T06:30"), 25)]
    # 01:30 on 11-07 happens twice: its first occurrence (EDT, 05:30Z) is taken
    _, sites = run(capsys, tmp_path, reg, tel, "--months", "11", "--window-start", "01:30", "--efficiency", "1")
    assert list(sites["deliverable_kw"]) == [15.0, 15.0, 25.0]


def test_silent_battery_of_a_one_site_fleet_is_counted_not_skipped(tmp_path, capsys):
    """The battery's soc row at window start is `missing` on day 3: that day is a sample day with 0 kW."""
    tel = [soc_end("A", utc(f"2026-07-{d:02d}T19:00"), None if d == 3 else 50) for d in range(1, 11)]
    s, sites = run(capsys, tmp_path, [bat("A", 100, 100)], tel, "--months", "7", "--efficiency", "1")
    assert s["n_days"] == 10 and s["unavailable_site_days"] == 1
    assert by_site_day(sites)[("A", "2026-07-03")] == (0.0, "offline")
    assert s["deliverable_p90_kw"] == 50.0 and s["deliverable_p50_kw"] == 50.0  # sorted 0, 50 x 9
    assert s["losses_kw"]["offline"] == 10.0 and s["losses_kw"]["soc"] == 45.0


def test_silent_battery_whose_site_reports_in_the_window(tmp_path, capsys):
    """No soc row at window start on day 3, but the site's PV reports in the window: offline, not skipped."""
    days = [utc(f"2026-07-{d:02d}T19:00") for d in range(1, 11)]
    tel = [soc_end("A", w, 50) for i, w in enumerate(days) if i != 2]
    tel += [row("A", "A-B", "soc_pct", days[2] + dt.timedelta(hours=2), 50)]
    tel += series("A", "A-P", "pv_kwh", days[2], [0.5] * 4)
    s, sites = run(capsys, tmp_path, [bat("A", 100, 100)], tel, "--months", "7", "--efficiency", "1")
    assert s["n_days"] == 10 and s["unavailable_site_days"] == 1
    assert by_site_day(sites)[("A", "2026-07-03")] == (0.0, "offline")


def test_suspect_revised_and_clipped_soc(tmp_path, capsys):
    w = [utc(f"2026-07-{d:02d}T19:00") for d in range(1, 5)]
    tel = [soc_end("A", w[0], 20), soc_end("A", w[0], 80, revision=1),  # the latest revision wins: 80
           soc_end("A", w[1], 60, quality="suspect"),                   # not a reading: offline, 0
           soc_end("A", w[2], 120),                                     # clipped to 100
           soc_end("A", w[3], 30, quality="estimated")]
    s, sites = run(capsys, tmp_path, [bat("A", 100, 100)], tel, "--months", "7", "--efficiency", "1")
    assert list(sites["deliverable_kw"]) == [80.0, 0.0, 100.0, 30.0]
    assert s["n_days"] == 4 and s["unavailable_site_days"] == 1
    assert s["deliverable_p90_kw"] == 0.0 and s["deliverable_p50_kw"] == 80.0  # sorted 0, 30, 80, 100


def test_non_export_cap_from_an_hourly_row_that_starts_before_the_window(tmp_path, capsys):
    """Window 15:30-16:30 EDT; hourly load rows start 19:00Z (6 kW) and 20:00Z (8 kW), PV 1 kW: cap 5 kW."""
    b = bat("N", 10, 100, export="false")
    reg = [b, other(b, "N-M", "meter"), other(b, "N-P", "pv_inverter", 5)]
    w = utc("2026-07-15T19:00")
    tel = [soc_end("N", w + dt.timedelta(minutes=30), 100)]
    tel += series("N", "N-M", "load_kwh", w, [6.0, 8.0], 3600) + series("N", "N-P", "pv_kwh", w, [1.0, 1.0], 3600)
    s, sites = run(capsys, tmp_path, reg, tel, "--months", "7", "--efficiency", "1", "--window-start", "15:30")
    assert by_site_day(sites) == {("N", "2026-07-15"): (5.0, "non_export")}
    assert s["losses_kw"]["non_export"] == 5.0 and s["unavailable_site_days"] == 0


@pytest.mark.parametrize("rows_, interval_s, cap", [
    ([6.0], 3600, 5.0),                                  # hourly: 6 - 1 kW
    ([0.5] * 5 + [0.3] + [0.5] * 6, 300, 3.6),            # 5-minute: the smallest interval, 0.3 kWh = 3.6 kW
])
def test_non_export_cap_per_window_interval(tmp_path, capsys, rows_, interval_s, cap):
    b = bat("N", 10, 100, export="false")
    reg = [b, other(b, "N-M", "meter"), other(b, "N-P", "pv_inverter", 5)]
    w = utc("2026-07-15T19:00")
    pv = [1.0] if interval_s == 3600 else [0.0] * 12
    tel = [soc_end("N", w, 100)] + series("N", "N-M", "load_kwh", w, rows_, interval_s) \
        + series("N", "N-P", "pv_kwh", w, pv, interval_s)
    _, sites = run(capsys, tmp_path, reg, tel, "--months", "7", "--efficiency", "1")
    assert by_site_day(sites) == {("N", "2026-07-15"): (cap, "non_export")}
