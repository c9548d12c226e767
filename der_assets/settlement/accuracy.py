"""Baseline accuracy: how well each ISO method predicts a site's own load on days without events.

PJM certifies a CBL by its relative root mean square error on historical non-event days: under
20% "is considered reasonably accurate", and the test needs 2 months of load data (VERIFIED,
pjm.com issue tracking; both numbers in params/baselines.csv). Here every non-event day of the
history is treated as a pseudo-event over a chosen local window, each candidate method's
baseline is computed exactly as for a real event, and its errors against the metered load give

    RRMSE % = 100 x sqrt(mean((baseline - load)^2)) / mean(load)
    bias %  = 100 x mean(baseline - load) / mean(load)

per meter (site) and per resource (the sum of its sites). A battery that shifts its site's net
load on ordinary days (arbitrage, self-consumption) makes the days a like-day baseline averages
unlike each other, and it is where these baselines go wrong: see docs/baselines.md.

OpenDSM's CalTRACK hourly model is an optional statistical comparison (`caltrack_accuracy`),
when the `caltrack` extra is installed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from der_assets.errors import UserError
from der_assets.settlement import calendar
from der_assets.settlement.baselines import MeterMatrix, compute_baseline, prepare_meter
from der_assets.settlement.baselines.parameters import resolve
from der_assets.settlement.events import Event

CANDIDATES = ("pjm_high_4_of_5", "pjm_same_day_3_2", "pjm_match_day", "nyiso_average_day", "isone_mean_10_of_10")
PJM_METHODS = ("pjm_high_4_of_5", "pjm_same_day_3_2", "pjm_match_day")
COLUMNS = ("level", "id", "method", "n_days", "n_intervals", "mean_load_kw", "rrmse_pct", "bias_pct", "passes")


def pseudo_events(days: Iterable[dt.date], window_h: tuple[int, int], timezone: str, iso: str,
                  event_days: Sequence[dt.date]) -> list[Event]:
    """One pseudo-event per day over local hours [window_h[0], window_h[1]), real event days excluded."""
    out = []
    for d in days:
        a = pd.Timestamp(dt.datetime.combine(d, dt.time(window_h[0]))).tz_localize(timezone).tz_convert("UTC")
        b = pd.Timestamp(dt.datetime.combine(d, dt.time(window_h[1]))).tz_localize(timezone).tz_convert("UTC")
        out.append(Event(f"pseudo-{d.isoformat()}", iso, a, b, timezone, other_event_days=tuple(event_days)))
    return out


def resource_matrix(mx: MeterMatrix, resources: Mapping[str, str]) -> MeterMatrix:
    """Sum of member meters per resource; an interval with any member missing is missing."""
    res = pd.Series(resources, dtype=object).reindex(mx.meter_ids)
    ids = np.array(sorted(set(res.dropna())), dtype=object)
    kw = np.full((len(ids), mx.n_slots), np.nan)
    for i, r in enumerate(ids):  # one pass per resource; a handful of resources, not per meter
        kw[i] = mx.kw[(res == r).to_numpy()].sum(axis=0)
    return MeterMatrix(ids, mx.t0_ns, mx.step_s, kw)


def _errors(mx: MeterMatrix, method: str, events: list[Event], params) -> tuple[np.ndarray, np.ndarray]:
    """[meter, pseudo-interval] baseline and load (kW)."""
    base, load = [], []
    for e in events:
        f = compute_baseline(method, mx, e, params).frame
        n_b = len(f) // max(len(mx.meter_ids), 1)
        base.append(f["baseline_kw"].to_numpy().reshape(len(mx.meter_ids), n_b))
        load.append(f["load_kw"].to_numpy().reshape(len(mx.meter_ids), n_b))
    return np.concatenate(base, axis=1), np.concatenate(load, axis=1)


def score(baseline_kw: np.ndarray, load_kw: np.ndarray) -> dict[str, np.ndarray]:
    """RRMSE and bias (%) per row over the intervals where both are known."""
    ok = np.isfinite(baseline_kw) & np.isfinite(load_kw)
    n = ok.sum(axis=1)
    e = np.where(ok, baseline_kw - load_kw, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_load = np.where(ok, load_kw, 0.0).sum(axis=1) / n
        rmse = np.sqrt((e ** 2).sum(axis=1) / n)
        bias = e.sum(axis=1) / n
        usable = (n > 0) & (mean_load > 0)  # RRMSE relative to a net exporter's mean means nothing
        return {"n_intervals": n, "mean_load_kw": mean_load,
                "rrmse_pct": np.where(usable, 100.0 * rmse / mean_load, np.nan),
                "bias_pct": np.where(usable, 100.0 * bias / mean_load, np.nan)}


def baseline_accuracy(meter: pd.DataFrame | MeterMatrix, *, timezone: str, window_h: tuple[int, int] = (14, 18),
                      iso: str = "PJM", methods: Sequence[str] = CANDIDATES, event_days: Sequence[dt.date] = (),
                      resources: Mapping[str, str] | None = None, params: Mapping | None = None,
                      first_day: dt.date | None = None, last_day: dt.date | None = None,
                      weekdays_only: bool = True) -> pd.DataFrame:
    """RRMSE and bias of every candidate method per meter (level "meter") and resource ("resource").

    Pseudo-events run on every non-event (by default weekday, non-holiday) day from first_day to
    last_day (default: the history's days); a day a method cannot compute (too little lookback
    yet) is simply not scored. `passes` applies PJM's limit to every method alike.
    """
    mx = meter if isinstance(meter, MeterMatrix) else prepare_meter(meter)
    if mx.n_slots == 0:
        raise UserError("baseline accuracy: no meter rows")
    lim = resolve("accuracy")["pjm_rrmse_max_pct"].value
    t0 = pd.Timestamp(mx.t0_ns, tz="UTC").tz_convert(timezone).date()
    t1 = pd.Timestamp(mx.time_ns(mx.n_slots - 1), tz="UTC").tz_convert(timezone).date()
    first_day, last_day = first_day or t0 + dt.timedelta(days=1), last_day or t1 - dt.timedelta(days=1)
    days = [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    if weekdays_only:
        days = [d for d, t in zip(days, calendar.day_types(days), strict=True) if t == calendar.WEEKDAY]
    days = [d for d in days if d not in set(event_days)]
    events = pseudo_events(days, window_h, timezone, iso, event_days)
    levels = [("meter", mx)] + ([("resource", resource_matrix(mx, resources))] if resources else [])
    rows = []
    for level, m in levels:
        for method in methods:
            base, load = _errors(m, method, events, params)
            s = score(base, load)
            scored_days = np.isfinite(base - load).reshape(len(m.meter_ids), len(events), -1).any(axis=2).sum(axis=1)
            for i, ident in enumerate(m.meter_ids):
                rows.append({"level": level, "id": ident, "method": method, "n_days": int(scored_days[i]),
                             "n_intervals": int(s["n_intervals"][i]), "mean_load_kw": s["mean_load_kw"][i],
                             "rrmse_pct": s["rrmse_pct"][i], "bias_pct": s["bias_pct"][i],
                             "passes": bool(s["rrmse_pct"][i] < lim)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def recommend(accuracy: pd.DataFrame, methods: Sequence[str] = PJM_METHODS) -> pd.DataFrame:
    """Per level and id: the passing method (of `methods`) with the lowest RRMSE, or none.

    A site with fewer scored days than PJM's 2 months of data is not recommended a method.
    """
    min_days = resolve("accuracy")["min_history_days"].value
    out = []
    for (level, ident), g in accuracy.groupby(["level", "id"], sort=True):
        g = g[g["method"].isin(methods)]
        ok = g[g["passes"]].sort_values("rrmse_pct", kind="stable")
        enough = bool((g["n_days"] * 7 / 5 >= min_days).any())  # weekday pseudo-events over calendar days
        best = ok.iloc[0] if len(ok) and enough else None
        out.append({"level": level, "id": ident, "method": None if best is None else best["method"],
                    "rrmse_pct": np.nan if best is None else best["rrmse_pct"],
                    "reason": ("lowest passing RRMSE" if best is not None else
                               "no method passes" if enough else f"under {min_days} days of history")})
    return pd.DataFrame(out, columns=["level", "id", "method", "rrmse_pct", "reason"])


# --- OpenDSM CalTRACK hourly: optional statistical comparison ----------------------------------------

class CaltrackUnavailable(UserError):
    """OpenDSM is not installed (optional extra `caltrack`)."""


def caltrack_available() -> bool:
    try:
        import opendsm.eemeter  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or installed but broken: both mean "not available"
        return False
    return True


def caltrack_accuracy(meter: pd.DataFrame, temperature_f: pd.Series, *, timezone: str,
                      window_h: tuple[int, int] = (14, 18), event_days: Sequence[dt.date] = (),
                      fit_until: dt.date, weekdays_only: bool = True) -> pd.DataFrame:
    """RRMSE and bias (%) of OpenDSM's CalTRACK hourly model per meter, in the same terms as
    baseline_accuracy: fit on the hours before `fit_until`, scored on the pseudo-event windows of
    the non-event days after it.

    temperature_f: hourly outdoor temperature (°F), UTC index. CalTRACK needs about a year of
    history to fit. Raises CaltrackUnavailable when opendsm is absent.
    """
    try:
        from opendsm import eemeter
    except Exception as exc:  # noqa: BLE001
        raise CaltrackUnavailable(f"CalTRACK comparison skipped: opendsm is not importable ({type(exc).__name__}: "
                                  f"{exc}); install the optional extra: pip install 'der_assets[caltrack]'") from None
    mx = prepare_meter(meter)
    hours = pd.date_range(pd.Timestamp(mx.t0_ns, tz="UTC").ceil("h"),
                          pd.Timestamp(mx.time_ns(mx.n_slots - 1), tz="UTC"), freq="h", inclusive="left")
    k = max(3600 // mx.step_s, 1)
    sub = hours.asi8[:, None] + np.arange(k)[None, :] * mx.step_s * 1_000_000_000
    hourly_kw = mx.take(mx.slots(sub)).mean(axis=2)  # [meter, hour] kW = kWh per hour
    local = hours.tz_convert(timezone)
    in_window = (local.hour >= window_h[0]) & (local.hour < window_h[1])
    day = pd.Index(local.date)
    scored = in_window & (day >= fit_until) & ~day.isin(list(event_days))
    if weekdays_only:
        scored &= calendar.day_types(list(local.date)) == calendar.WEEKDAY
    temp = pd.Series(temperature_f).tz_convert("UTC").reindex(hours)
    rows = []
    for i, ident in enumerate(mx.meter_ids):
        df = pd.DataFrame({"observed": hourly_kw[i], "temperature": temp.to_numpy()}, index=local)
        fit = df[day < fit_until]
        model = eemeter.HourlyCaltrackModel().fit(eemeter.HourlyCaltrackBaselineData(fit, is_electricity_data=True))
        pred = model.predict(eemeter.HourlyCaltrackReportingData(df[day >= fit_until], is_electricity_data=True))
        predicted = pred["predicted"].reindex(local).to_numpy()
        s = score(np.where(scored, predicted, np.nan)[None, :], np.where(scored, hourly_kw[i], np.nan)[None, :])
        rows.append({"level": "meter", "id": ident, "method": "caltrack_hourly", "n_days": int(len(set(day[scored]))),
                     "n_intervals": int(s["n_intervals"][0]), "mean_load_kw": s["mean_load_kw"][0],
                     "rrmse_pct": s["rrmse_pct"][0], "bias_pct": s["bias_pct"][0],
                     "passes": bool(s["rrmse_pct"][0] < resolve("accuracy")["pjm_rrmse_max_pct"].value)})
    return pd.DataFrame(rows, columns=list(COLUMNS))
