"""Utility interval CSV: each shipped layout on a hand-made file in its documented shape, its DST days,
labels, units, blank and estimated cells, and bad rows. Values are small enough to check by hand."""

from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.parsers import utility_csv as ucsv
from der_assets.telemetry.parsers._common import Ctx

RECEIVED = pd.Timestamp("2026-12-01T00:00Z")
PECO_HEAD = ('Name,WILLIAM PENN\nAddress,"1 S BROAD ST, PHILADELPHIA PA 19112"\nAccount Number,1776000000\n'
             "Service,Service 1\n\nTYPE,DATE,START TIME,END TIME,USAGE (kWh),NOTES\n")
COMED_HEAD = ("Name,JANE DOE\nAddress,1 W MADISON ST\nAccount Number,0000000001\nService,Service 1\n\n"
              "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n")
SCE_HEAD = ('Energy Usage Information\n"For location: CA SOMEWHERE"\n\nMeter Reading Information\n'
            '"Type of readings: Electricity"\n\nDetailed Usage\n"Start date: 2022-07-31 23:00:00  for 1 days"\n\n')
SCE_DELIVERED = ("Energy  Delivered time period,Usage Delivered(Real energy in kilowatt-hours)"
                 "(Real energy in kilowatt-hours),Reading quality\n")
SCE_RECEIVED = SCE_DELIVERED.replace("Delivered", "Received")


def parse(endpoint: str, text: str, tz: str | None = None, notes: list | None = None) -> pd.DataFrame:
    return parse_payload("utility_csv", endpoint, text.encode("utf-8"), site_id="S-1", tz=tz, received_at=RECEIVED,
                         notes=notes)


def utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s) for s in stamps]


def opower_rows(day: str, labels: list[str], minutes: int, values, units: str | None = None) -> str:
    """Opower rows: START TIME, END TIME = start + length - 1 minute."""
    out = []
    for label, v in zip(labels, values, strict=True):
        end = (dt.datetime.strptime(label, "%H:%M") + dt.timedelta(minutes=minutes - 1)).strftime("%H:%M")
        extra = f",{units},$0.01," if units else ","
        out.append(f"Electric usage,{day},{label},{end},{v}{extra}")
    return "\n".join(out) + "\n"


def hours(*hs: int) -> list[str]:
    return [f"{h:02d}:00" for h in hs]


def quarters(*hs: int) -> list[str]:
    return [f"{h:02d}:{q:02d}" for h in hs for q in (0, 15, 30, 45)]


# ---- PECO (Opower, USAGE (kWh), net)


def test_peco_sample_as_documented():
    text = PECO_HEAD + ("Electric usage,2023-07-04,00:00,00:59,0.29,\nElectric usage,2023-07-04,01:00,01:59,0.34,\n"
                        "Electric usage,2023-07-04,02:00,02:59,,\nElectric usage,2023-07-04,03:00,03:59,-0.50,estimated\n")
    df = parse("peco", "\ufeff" + text, tz="America/New_York")  # the export starts with a BOM
    assert list(df["interval_start"]) == utc("2023-07-04T04:00Z", "2023-07-04T05:00Z", "2023-07-04T06:00Z",
                                             "2023-07-04T07:00Z")  # EDT = UTC-4, interval-beginning
    assert set(df["interval_s"]) == {3600} and set(df["source"]) == {"ami"} and set(df["channel"]) == {"grid_kwh"}
    assert df["value"].tolist()[:2] == [0.29, 0.34] and np.isnan(df["value"].iloc[2]) and df["value"].iloc[3] == -0.5
    assert df["quality"].tolist() == ["measured", "measured", "missing", "estimated"]  # blank is missing, never 0


def test_peco_fall_back_repeats_one_oclock_in_clock_order():
    labels = hours(0, 1, 1, *range(2, 24))  # 25 hours on 2026-11-01
    df = parse("peco", PECO_HEAD + opower_rows("2026-11-01", labels, 60, [1.0, 2.0, 3.0] + [4.0] * 22))
    assert len(df) == 25
    assert list(df["interval_start"][:4]) == utc("2026-11-01T04:00Z", "2026-11-01T05:00Z", "2026-11-01T06:00Z",
                                                 "2026-11-01T07:00Z")  # 01:00 EDT, then 01:00 EST
    assert df["value"].tolist()[:3] == [1.0, 2.0, 3.0]
    assert (df["interval_start"].diff().dropna() == pd.Timedelta(hours=1)).all()


def test_peco_spring_forward_has_no_two_oclock():
    df = parse("peco", PECO_HEAD + opower_rows("2026-03-08", hours(0, 1, *range(3, 24)), 60, [1.0] * 23))
    assert len(df) == 23
    assert list(df["interval_start"][:3]) == utc("2026-03-08T05:00Z", "2026-03-08T06:00Z", "2026-03-08T07:00Z")
    with pytest.raises(ParseError, match=r"row 9: 2026-03-08 02:00 does not exist in America/New_York"):
        parse("peco", PECO_HEAD + opower_rows("2026-03-08", hours(0, 1, 2, 3), 60, [1.0] * 4))


# ---- ComEd (Opower with UNITS and COST)


def test_comed_sample_reads_units_per_row():
    text = COMED_HEAD + ("Electric usage,2022-12-01,00:00,00:14,0.16,kWh,$0.02,\n"
                         "Electric usage,2022-12-01,00:15,00:29,250,Wh,$0.03,\n"
                         "Electric usage,2022-12-01,00:30,00:44,0.10,kWh,$0.01,Estimated\n")
    df = parse("comed", text, tz="America/Chicago")
    assert list(df["interval_start"]) == utc("2022-12-01T06:00Z", "2022-12-01T06:15Z", "2022-12-01T06:30Z")  # CST
    assert df["value"].tolist() == [0.16, 0.25, 0.10] and set(df["interval_s"]) == {900}
    assert df["quality"].tolist() == ["measured", "measured", "estimated"]


def test_comed_thirty_minute_file_is_refused_by_name():
    text = COMED_HEAD + opower_rows("2022-12-01", ["00:00", "00:30"], 30, [0.16, 0.2], units="kWh")
    with pytest.raises(ParseError, match=r"interval length 1800 s is not interval telemetry"):
        parse("comed", text)


def test_comed_dst_days_quarter_hours():
    fall = quarters(0, 1, 1, *range(2, 24))
    df = parse("comed", COMED_HEAD + opower_rows("2026-11-01", fall, 15, [0.1] * 100, units="kWh"))
    assert len(df) == 100 and (df["interval_start"].diff().dropna() == pd.Timedelta(minutes=15)).all()
    assert df["interval_start"].iloc[0] == pd.Timestamp("2026-11-01T05:00Z")  # 00:00 CDT
    assert df["interval_start"].iloc[8] == pd.Timestamp("2026-11-01T07:00Z")  # second 01:00: CST
    spring = quarters(0, 1, *range(3, 24))
    df = parse("comed", COMED_HEAD + opower_rows("2026-03-08", spring, 15, [0.1] * 92, units="kWh"))
    assert len(df) == 92 and df["interval_start"].iloc[8] == pd.Timestamp("2026-03-08T08:00Z")  # 03:00 CDT


# ---- SCE (delivered and received sections)


def sce_section(table: str, day: str, starts: list[str], values: list[str], quality: list[str] | None = None) -> str:
    out = [f'"Data for period starting: {day} 00:00:00  for 24 hours"', table.rstrip("\n")]
    for i, (s, v) in enumerate(zip(starts, values, strict=True)):
        a = dt.datetime.strptime(f"{day} {s}", "%Y-%m-%d %H:%M")
        b = a + dt.timedelta(minutes=15)
        q = quality[i] if quality else ""
        out.append(f'"{a:%Y-%m-%d %H:%M:%S} to {b:%Y-%m-%d %H:%M:%S}","{v}","{q}"')
    return "\n".join(out) + "\n\n"


def test_sce_sample_nets_delivered_and_received():
    starts = ["00:00", "00:15", "00:30", "00:45"]
    text = (SCE_HEAD + sce_section(SCE_DELIVERED, "2022-08-01", starts, ["0.380", "0.360", "", "0.200"],
                                   ["", "actual", "", "estimated"])
            + sce_section(SCE_RECEIVED, "2022-08-01", starts, ["0.000", "0.100", "0.050", "0.500"]))
    df = parse("sce", text, tz="America/Los_Angeles")
    assert list(df["interval_start"]) == utc("2022-08-01T07:00Z", "2022-08-01T07:15Z", "2022-08-01T07:30Z",
                                             "2022-08-01T07:45Z")  # PDT = UTC-7
    v = df["value"].to_numpy()
    assert v[0] == pytest.approx(0.38) and v[1] == pytest.approx(0.26) and np.isnan(v[2]) and v[3] == pytest.approx(-0.3)
    assert df["quality"].tolist() == ["measured", "measured", "missing", "estimated"]  # delivered blank: missing


def test_sce_fall_back_as_the_real_export_writes_it():
    """2021-11-07 in SCE's export: 01:00-01:45 once, then 02:00-02:45 twice (100 rows)."""
    starts = quarters(0, 1, 2, 2, *range(3, 24))
    values = [f"{0.001 * i:.3f}" for i in range(100)]
    text = (SCE_HEAD + sce_section(SCE_DELIVERED, "2021-11-07", starts, values)
            + sce_section(SCE_RECEIVED, "2021-11-07", starts, ["0.000"] * 100))
    df = parse("sce", text, tz="America/Los_Angeles")
    assert len(df) == 100 and (df["interval_start"].diff().dropna() == pd.Timedelta(minutes=15)).all()
    by_row = dict(zip(df["value"].round(3), df["interval_start"], strict=True))
    assert by_row[0.007] == pd.Timestamp("2021-11-07T08:45Z")  # 01:45 PDT
    assert by_row[0.008] == pd.Timestamp("2021-11-07T09:00Z")  # first 02:00 row: 01:00 PST
    assert by_row[0.012] == pd.Timestamp("2021-11-07T10:00Z")  # second 02:00 row: 02:00 PST
    assert by_row[0.016] == pd.Timestamp("2021-11-07T11:00Z")  # 03:00 PST


def test_sce_spring_forward_day():
    starts = quarters(0, 1, *range(3, 24))
    text = (SCE_HEAD + sce_section(SCE_DELIVERED, "2022-03-13", starts, ["0.100"] * 92)
            + sce_section(SCE_RECEIVED, "2022-03-13", starts, ["0.000"] * 92))
    df = parse("sce", text, tz="America/Los_Angeles")
    assert len(df) == 92 and df["interval_start"].iloc[0] == pd.Timestamp("2022-03-13T08:00Z")
    assert df["interval_start"].iloc[8] == pd.Timestamp("2022-03-13T10:00Z")  # 03:00 PDT follows 01:45 PST


def test_sce_received_row_missing_makes_the_interval_missing():
    text = (SCE_HEAD + sce_section(SCE_DELIVERED, "2022-08-01", ["00:00", "00:15"], ["0.4", "0.4"])
            + sce_section(SCE_RECEIVED, "2022-08-01", ["00:00"], ["0.1"]))
    df = parse("sce", text)
    assert df["value"].iloc[0] == pytest.approx(0.3) and np.isnan(df["value"].iloc[1])
    assert df["quality"].tolist() == ["measured", "missing"]  # never the delivered half alone


# ---- labels, units and DST columns on a mapping of one's own


def custom(tmp_path, body: str) -> ucsv.Mapping:
    path = tmp_path / "u.toml"
    path.write_text(textwrap.dedent(body))
    return ucsv.load_mapping(path)


def read(m: ucsv.Mapping, text: str) -> pd.DataFrame:
    ctx = Ctx(source="ami", endpoint=m.name, site_id="S-1", received_at=RECEIVED, tz=m.timezone)
    return ucsv.parse_with(m, text.encode(), ctx)


ONE_COLUMN = """
    name = "u"
    utility = "test"
    status = "unverified"
    citation = "hand-made"
    timezone = "America/New_York"
    label = "{label}"
    units = "{units}"
    datetime_format = "%Y-%m-%d %H:%M"
    dst_mode = "{mode}"
    [[tables]]
    header = ["Meter", "Interval", "Value", "DST"]
    role = "net"
    meter = "Meter"
    timestamp = "Interval"
    value = "Value"
    dst_column = "DST"
"""


def test_interval_ending_and_beginning_labels(tmp_path):
    text = "Meter,Interval,Value,DST\nM1,2026-07-01 00:15,0.5,\nM1,2026-07-01 00:30,0.7,\n"
    ending = read(custom(tmp_path, ONE_COLUMN.format(label="ending", units="kWh", mode="order")), text)
    beginning = read(custom(tmp_path, ONE_COLUMN.format(label="beginning", units="kWh", mode="order")), text)
    assert list(ending["interval_start"]) == utc("2026-07-01T04:00Z", "2026-07-01T04:15Z")  # 00:15 ends 00:00-00:15
    assert list(beginning["interval_start"]) == utc("2026-07-01T04:15Z", "2026-07-01T04:30Z")
    assert set(ending["interval_s"]) == {900}


def test_ending_labels_on_fall_back(tmp_path):
    m = custom(tmp_path, ONE_COLUMN.format(label="ending", units="kWh", mode="order"))
    labels = ["00:45", "01:00", "01:15", "01:30", "01:45", "01:00", "01:15", "01:30", "01:45", "02:00"]
    text = "Meter,Interval,Value,DST\n" + "".join(f"M1,2026-11-01 {x},{i},\n" for i, x in enumerate(labels))
    df = read(m, text)
    assert df["interval_start"].iloc[0] == pd.Timestamp("2026-11-01T04:30Z")
    assert (df["interval_start"].diff().dropna() == pd.Timedelta(minutes=15)).all() and len(df) == 10


def test_a_file_of_two_meters_gives_each_its_device(tmp_path):
    m = custom(tmp_path, ONE_COLUMN.format(label="beginning", units="kWh", mode="order"))
    # both meters repeat 01:00 on the fall-back day; the order counts per meter
    text = ("Meter,Interval,Value,DST\nM1,2026-11-01 01:00,1,\nM2,2026-11-01 01:00,10,\n"
            "M1,2026-11-01 01:00,2,\nM2,2026-11-01 01:00,20,\n")
    df = read(m, text)
    got = {(d, v): t for d, v, t in zip(df["device_id"], df["value"], df["interval_start"], strict=True)}
    assert got == {("M1", 1.0): pd.Timestamp("2026-11-01T05:00Z"), ("M1", 2.0): pd.Timestamp("2026-11-01T06:00Z"),
                   ("M2", 10.0): pd.Timestamp("2026-11-01T05:00Z"), ("M2", 20.0): pd.Timestamp("2026-11-01T06:00Z")}
    assert ucsv.meter_ids(text.encode(), m) == ["M1", "M2"]


def test_kw_demand_becomes_energy(tmp_path):
    m = custom(tmp_path, ONE_COLUMN.format(label="beginning", units="kW", mode="order"))
    df = read(m, "Meter,Interval,Value,DST\nM1,2026-07-01 00:00,2.0,\nM1,2026-07-01 00:15,4.0,\n")
    assert df["value"].tolist() == [0.5, 1.0]  # 2 kW for a quarter-hour is 0.5 kWh


def test_repeated_hour_told_by_an_offset_column(tmp_path):
    m = custom(tmp_path, ONE_COLUMN.format(label="beginning", units="Wh", mode="offset_column"))
    text = ("Meter,Interval,Value,DST\nM1,2026-11-01 01:00,100,-04:00\nM1,2026-11-01 01:00,200,-05:00\n"
            "M1,2026-11-01 01:15,300,-05:00\n")
    df = read(m, text)
    assert list(df["interval_start"]) == utc("2026-11-01T05:00Z", "2026-11-01T06:00Z", "2026-11-01T06:15Z")
    assert df["value"].tolist() == [0.1, 0.2, 0.3]


def test_repeated_hour_told_by_a_flag_column(tmp_path):
    m = custom(tmp_path, ONE_COLUMN.format(label="beginning", units="kWh", mode="flag_column"))
    # the flagged row is the standard-time repeat even though it comes first in the file
    text = "Meter,Interval,Value,DST\nM1,2026-11-01 01:00,2,*\nM1,2026-11-01 01:00,1,\n"
    df = read(m, text)
    assert dict(zip(df["value"], df["interval_start"], strict=True)) == {
        1.0: pd.Timestamp("2026-11-01T05:00Z"), 2.0: pd.Timestamp("2026-11-01T06:00Z")}


def test_a_repeated_hour_seen_once_is_suspect(tmp_path):
    notes: list[str] = []
    text = PECO_HEAD + opower_rows("2026-11-01", hours(0, 1, 2), 60, [1.0, 2.0, 3.0])
    df = parse("peco", text, notes=notes)
    assert df["quality"].tolist() == ["measured", "suspect", "measured"]
    assert any("appear once" in n for n in notes)


# ---- bad input: one line naming the row and column


@pytest.mark.parametrize("endpoint, text, message", [
    ("peco", PECO_HEAD + "Electric usage,2023-07-04,00:00,00:59,abc,\n",
     r"row 7, column 'USAGE \(kWh\)': 'abc' is not a number"),
    ("peco", PECO_HEAD + "Electric usage,2023-07-04,25:00,00:59,0.1,\n",
     r"row 7, column 'START TIME': '25:00' is not a time in the form %H:%M"),
    ("peco", PECO_HEAD + "Natural gas usage,2023-07-04,00:00,23:59,1.0,\n",
     r"row 7, column 'TYPE': 'Natural gas usage' is not 'Electric usage'"),
    ("peco", PECO_HEAD + "Electric usage,2023-07-04,00:00,00:59,0.1,\nElectric usage,2023-07-04,00:00,00:59,0.2,\n",
     r"rows 7 and 8 are the same net interval 2023-07-04T04:00Z"),
    ("comed", COMED_HEAD + "Electric usage,2022-12-01,00:00,00:14,0.16,therm,$0.02,\n",
     r"row 7, column 'UNITS': unit 'therm' is not kWh, Wh or kW"),
    ("peco", "Name,X\nDate,Usage\n2023-07-04,1\n", r"no interval rows: no table with the peco header"),
    ("sce", SCE_HEAD + SCE_DELIVERED + '"2022-08-01 00:00:00 - 2022-08-01 00:15:00","0.1",""\n',
     r"row 11, column 'Energy Delivered time period': .* is not 'start to end'"),
])
def test_bad_rows_are_one_line_errors(endpoint, text, message):
    with pytest.raises(ParseError, match=message) as err:
        parse(endpoint, text)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"utility_csv/{endpoint} site=S-1")


def test_not_utf8_names_the_row():
    payload = (PECO_HEAD + "Electric usage,2023-07-04,00:00,00:59,0.1,\n").encode() + b"Electric usage,\xff\n"
    with pytest.raises(ParseError, match=r"row 8: not UTF-8"):
        parse_payload("utility_csv", "peco", payload, site_id="S-1", received_at=RECEIVED)


def test_site_zone_must_agree_with_the_mapping():
    with pytest.raises(ParseError, match="disagrees with site tz"):
        parse("peco", PECO_HEAD + "Electric usage,2023-07-04,00:00,00:59,0.1,\n", tz="America/Chicago")


def test_every_shipped_mapping_cites_its_source_and_tag():
    maps = ucsv.shipped_mappings()
    assert set(maps) >= {"peco", "comed", "sce"}
    for m in maps.values():
        assert m.status in ("verified", "verified-secondary", "unverified")
        assert "https://" in m.citation and m.edc
    assert maps["sce"].status == "verified" and maps["sce"].dst_repeated_hour == 2
