"""Green Button (NAESB REQ.21 ESPI) files from the twin's revenue meters, delivered late like a utility.

Why: settlement and the AMI-supersedes-inverter revision path must be tested on real ESPI
XML that arrives 24-48 h after the day, not on frames handed over in memory.

The feed follows the OpenESPI sample (test_usage_data.xml): an Atom <feed> whose entries
are linked by <link rel="self|up|related">: UsagePoint (ServiceCategory kind 0), the
site's LocalTimeParameters, and per flow direction a MeterReading, its ReadingType and one
IntervalBlock for the local day. ESPI elements use the default namespace
xmlns="http://naesb.org/espi" on each resource, as in the sample.

ESPI quirks reproduced here:
- IntervalReading timePeriod.start is epoch seconds UTC of the interval BEGINNING;
  duration 900. The block covers one LOCAL day, so its duration is 82800 / 86400 / 90000 s
  with 92 / 96 / 100 readings.
- ReadingType: uom 72 (Wh), kind 12 (energy), accumulationBehaviour 4 (deltaData),
  commodity 1, intervalLength 900, powerOfTenMultiplier 0 (whole Wh).
- LocalTimeParameters carry the site zone's standard offset (tzOffset, s), dstOffset and
  the DST start/end rules as ESPI 32-bit hex bitfields (seconds bits 0-11, hour 12-16,
  weekday 17-19 with 7 = Sunday, day-of-month 20-24, operator 25-27 where 2 + k means the
  (k+1)-th occurrence and 7 the last, month 28-31), e.g. 360E2000 / B40E2000 in the US.

Reverse flow: a bidirectional net meter registers import and export separately. The file
carries TWO MeterReadings under the UsagePoint: flowDirection 1 (forward, delivered to
the premises = grid import) and flowDirection 19 (reverse, received from the premises =
export), each with non-negative values. The project's parser nets them per interval
(forward - reverse = grid_kwh, + import). Values come from the twin's grid_kwh per 5-min
step (positive parts to forward, negative parts to reverse), summed per quarter-hour and
turned into whole Wh the way a meter does: cumulative registers are rounded, then
differenced, so a day's total is off by less than 1 Wh. A quarter-hour with any twin step
missing (a data fault) has no IntervalReading.

Delivery: `deliver_due_files` writes one file per meter and local day, atomically, once
the day ended more than a per-(meter, day) delay ago, drawn deterministically from
`delay_h` (24-48 h by default). A ledger in the inbox (.greenbutton_delivered) remembers
what was delivered, so a file is never written twice even after a consumer moved it away.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from der_assets.atomic import write_atomic
from der_assets.simulator.hub import TwinHub

VENDOR = "greenbutton"
ESPI_NS = "http://naesb.org/espi"
INTERVAL_S = 900
FORWARD, REVERSE = 1, 19
LEDGER = ".greenbutton_delivered"


# ---- LocalTimeParameters


def _rule(local_before: dt.datetime) -> str:
    """ESPI DST rule bitfield for a transition at this local wall time (before the change)."""
    day, month = local_before.day, local_before.month
    days_in_month = (dt.date(local_before.year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    occurrence = (day - 1) // 7 + 1
    operator = 7 if (occurrence >= 4 and day + 7 > days_in_month) else occurrence + 1
    weekday = local_before.isoweekday()  # 1 = Monday .. 7 = Sunday
    secs = local_before.minute * 60 + local_before.second
    value = (month << 28) | (operator << 25) | (0 << 20) | (weekday << 17) | (local_before.hour << 12) | secs
    return f"{value:08X}"


@lru_cache(maxsize=256)
def local_time_parameters(tz: str, year: int) -> dict:
    """tzOffset, dstOffset and ESPI start/end rules of `tz` for `year`, read from the tz database.

    Standard time is taken as the smaller of the year's offsets (DST always adds time).
    """
    minutes = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="min", tz="UTC")
    offsets = ((minutes.tz_convert(tz).tz_localize(None) - minutes.tz_localize(None)).total_seconds()).to_numpy()
    std, dst = int(offsets.min()), int(offsets.max() - offsets.min())
    changes = np.flatnonzero(np.diff(offsets) != 0)
    if dst == 0 or len(changes) < 2:
        return {"tzOffset": std, "dstOffset": 0, "dstStartRule": "00000000", "dstEndRule": "00000000"}
    rules = {}
    for i in changes[:2]:
        # wall clock just before the change: the instant of change read in the old offset
        before = (minutes[i + 1] + pd.Timedelta(seconds=offsets[i])).tz_localize(None).to_pydatetime()
        rules["dstStartRule" if offsets[i + 1] > offsets[i] else "dstEndRule"] = _rule(before)
    return {"tzOffset": std, "dstOffset": dst, **rules}


# ---- values


def day_window(tz: str, day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward").tz_convert("UTC")
    end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz, nonexistent="shift_forward").tz_convert("UTC")
    return start, end


def meter_intervals(hub: TwinHub, site_id: str, day: dt.date) -> pd.DataFrame:
    """Quarter-hours of one local day: interval_start, forward_wh, reverse_wh (whole Wh, meter rounding)."""
    tz = str(hub.sites.loc[site_id, "timezone"])
    start, end = day_window(tz, day)
    frame = hub.window(site_id, start, end, vendor=VENDOR)
    grid_wh = frame["grid_kwh"].to_numpy(dtype=float) * 1000.0
    grid = pd.date_range(start, end, freq=f"{INTERVAL_S}s", inclusive="left")
    # quarter-hour of each twin step, by array arithmetic (a pandas groupby cost 15 ms a file,
    # and the twin's past is a thousand files)
    step_s = frame["interval_start"].astype("int64").to_numpy() // 10**9
    q = (step_s - int(start.value // 10**9)) // INTERVAL_S
    inside = (q >= 0) & (q < len(grid))
    q = q[inside]
    steps = INTERVAL_S // int(hub.interval_s)
    complete = np.bincount(q, minlength=len(grid)) == steps
    out = pd.DataFrame({"interval_start": grid})
    for values, name in ((np.maximum(grid_wh, 0.0), "forward_wh"), (np.maximum(-grid_wh, 0.0), "reverse_wh")):
        per_q = np.bincount(q, weights=values[inside], minlength=len(grid))
        register = np.floor(np.cumsum(np.where(complete, per_q, 0.0)) + 1e-9)
        out[name] = np.diff(np.concatenate([[0.0], register])).astype(np.int64)
    return out[complete].reset_index(drop=True)


# ---- XML


def _urn(key: str) -> str:
    """A stable urn:uuid from a key, so rewriting a day gives byte-identical ids."""
    h = hashlib.sha1(key.encode()).hexdigest().upper()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _entry(self_href: str, up_href: str, title: str, content: str, related=(), updated: str = "") -> str:
    links = [f'<link rel="self" href="{self_href}"/>', f'<link rel="up" href="{up_href}"/>']
    links += [f'<link rel="related" href="{h}"/>' for h in related]
    return (f"<entry><id>{_urn(self_href)}</id>{''.join(links)}<title>{escape(title)}</title><content>{content}</content>"
            f"<published>{updated}</published><updated>{updated}</updated></entry>")


def _reading_type(direction: int) -> str:
    return (f'<ReadingType xmlns="{ESPI_NS}"><accumulationBehaviour>4</accumulationBehaviour>'
            f"<commodity>1</commodity><dataQualifier>12</dataQualifier><flowDirection>{direction}</flowDirection>"
            f"<intervalLength>{INTERVAL_S}</intervalLength><kind>12</kind><phase>769</phase>"
            f"<powerOfTenMultiplier>0</powerOfTenMultiplier><timeAttribute>0</timeAttribute><uom>72</uom>"
            f"</ReadingType>")


def _block(start_s: int, duration_s: int, starts: np.ndarray, values: np.ndarray) -> str:
    readings = "".join(
        f"<IntervalReading><timePeriod><duration>{INTERVAL_S}</duration><start>{s}</start></timePeriod>"
        f"<value>{v}</value></IntervalReading>" for s, v in zip(starts.tolist(), values.tolist(), strict=True))
    return (f'<IntervalBlock xmlns="{ESPI_NS}"><interval><duration>{duration_s}</duration><start>{start_s}</start>'
            f"</interval>{readings}</IntervalBlock>")


def espi_day_xml(hub: TwinHub, site_id: str, day: dt.date, *, updated: pd.Timestamp | None = None) -> bytes:
    """One meter's local day as a Green Button Atom feed (forward and reverse MeterReadings)."""
    site = hub.sites.loc[site_id]
    tz, meter_id = str(site["timezone"]), str(site["meter_id"])
    start, end = day_window(tz, day)
    data = meter_intervals(hub, site_id, day)
    starts = (data["interval_start"].astype("int64") // 10**9).to_numpy()
    stamp = pd.Timestamp(updated if updated is not None else hub.now()).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    base = f"/espi/1_1/resource/RetailCustomer/{site_id}/UsagePoint/{meter_id}"
    ltp_href = f"/espi/1_1/resource/LocalTimeParameters/{meter_id}"
    ltp = local_time_parameters(tz, day.year)
    entries = [
        _entry(base, f"/espi/1_1/resource/RetailCustomer/{site_id}/UsagePoint", f"Meter {meter_id}",
               f'<UsagePoint xmlns="{ESPI_NS}"><ServiceCategory><kind>0</kind></ServiceCategory></UsagePoint>',
               related=(f"{base}/MeterReading", ltp_href), updated=stamp),
        _entry(ltp_href, "/espi/1_1/resource/LocalTimeParameters", f"Local time {tz}",
               f'<LocalTimeParameters xmlns="{ESPI_NS}"><dstEndRule>{ltp["dstEndRule"]}</dstEndRule>'
               f'<dstOffset>{ltp["dstOffset"]}</dstOffset><dstStartRule>{ltp["dstStartRule"]}</dstStartRule>'
               f'<tzOffset>{ltp["tzOffset"]}</tzOffset></LocalTimeParameters>', updated=stamp),
    ]
    for n, (direction, column, title) in enumerate(
            ((FORWARD, "forward_wh", "Delivered (grid import)"), (REVERSE, "reverse_wh", "Received (grid export)")),
            start=1):
        mr = f"{base}/MeterReading/{n:02d}"
        rt = f"/espi/1_1/resource/ReadingType/{meter_id}-{direction}"
        entries.append(_entry(mr, f"{base}/MeterReading", f"Fifteen Minute Electricity {title}",
                              f'<MeterReading xmlns="{ESPI_NS}"/>', related=(f"{mr}/IntervalBlock", rt), updated=stamp))
        entries.append(_entry(rt, "/espi/1_1/resource/ReadingType", "Type of Meter Reading Data",
                              _reading_type(direction), updated=stamp))
        entries.append(_entry(f"{mr}/IntervalBlock/{day:%Y%m%d}", f"{mr}/IntervalBlock", "",
                              _block(int(start.value // 10**9), int((end - start).total_seconds()), starts,
                                     data[column].to_numpy()), updated=stamp))
    feed = (f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>{_urn(f'{meter_id}/{day}')}</id>"
            f"<title>Green Button Usage Feed</title><updated>{stamp}</updated>"
            f'<link rel="self" href="/espi/1_1/resource/Subscription/{meter_id}/UsagePoint"/>'
            f"{''.join(entries)}</feed>\n")
    return feed.encode("utf-8")


# ---- delivery


def delivery_delay(meter_id: str, day: dt.date, delay_h: tuple[float, float] = (24, 48)) -> pd.Timedelta:
    """Deterministic per-(meter, day) delay in [lo, hi] hours: a hash, so reruns agree."""
    lo, hi = delay_h
    u = int.from_bytes(hashlib.sha256(f"{meter_id}|{day.isoformat()}".encode()).digest()[:8], "big") / 2**64
    return pd.Timedelta(hours=lo + (hi - lo) * u)


def file_name(meter_id: str, day: dt.date) -> str:
    return f"greenbutton_{meter_id}_{day:%Y-%m-%d}.xml"


def _ledger(inbox: Path) -> set[str]:
    path = inbox / LEDGER
    return set(path.read_text().split()) if path.exists() else set()


def deliver_due_files(hub: TwinHub, inbox: Path, *, delay_h: tuple[float, float] = (24, 48),
                      csv_share: float | None = None) -> list[Path]:
    """Write every meter-day file that has come due by the hub's clock; returns the new paths.

    A local day is due once it has ended (and lies wholly after the hub's start) and its
    delay has passed. Files are written atomically and recorded in the inbox ledger.
    csv_share: the share of meters whose utility sends its own interval CSV instead
    (simulator/utility_csv.py; None: DER_TWIN_UTILITY_CSV_SHARE, default 0).
    """
    from der_assets.simulator import utility_csv  # it builds on this module

    share = utility_csv.csv_share() if csv_share is None else csv_share
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    now = hub.now()
    done = _ledger(inbox)
    written: list[Path] = []
    for site_id, site in hub.sites.iterrows():
        meter_id = site.get("meter_id")
        if meter_id is None or (isinstance(meter_id, float) and np.isnan(meter_id)):
            continue
        tz = str(site["timezone"])
        layout = utility_csv.layout_for(str(meter_id), site.get("edc"), share)
        day = hub.start.tz_convert(tz).date()
        while True:
            start, end = day_window(tz, day)
            if end > now:
                break
            name = utility_csv.file_name(layout, str(meter_id), day) if layout else file_name(str(meter_id), day)
            if name in done or (inbox / name).exists():
                done.add(name)
            elif start >= hub.start and (due := end + delivery_delay(str(meter_id), day, delay_h)) <= now:
                # stamped when the utility delivered it, so a day's file is the same bytes whenever it is written
                body = (utility_csv.day_csv(hub, str(site_id), day, layout) if layout
                        else espi_day_xml(hub, str(site_id), day, updated=due))
                written.append(write_atomic(inbox / name, lambda tmp, b=body: tmp.write_bytes(b)))
                done.add(name)
            day += dt.timedelta(days=1)
    if written:
        write_atomic(inbox / LEDGER, lambda tmp: tmp.write_text("".join(f"{n}\n" for n in sorted(done))))
    return written
