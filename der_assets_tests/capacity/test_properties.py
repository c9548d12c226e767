"""Hypothesis properties of the availability model and the fleet quantile."""

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from der_assets.capacity.availability import Window, site_availability
from der_assets.capacity.distribution import exceedance_quantile

from .helpers import registry, site, soc_at

DAYS = [f"2026-07-{d:02d}T19:00:00Z" for d in range(1, 6)]

fleet = st.lists(
    st.tuples(st.floats(0.5, 15), st.floats(1, 40), st.floats(0, 80), st.booleans(),
              st.lists(st.floats(0, 100), min_size=5, max_size=5)),
    min_size=1, max_size=6)


def _run(spec, eff, bump=0.0):
    reg = registry(*[site(f"S{i}", rated_kw=kw, capacity_kwh=kwh, reserve_pct=res, opt_out=out)
                     for i, (kw, kwh, res, out, _) in enumerate(spec)])
    tel = pd.concat([soc_at(f"S{i}", d, min(100.0, soc[j] + bump))
                     for i, (*_, soc) in enumerate(spec) for j, d in enumerate(DAYS)])
    return site_availability(reg, tel, "PJM", Window(months=(7,), efficiency=eff))


@settings(max_examples=25, deadline=None)
@given(fleet, st.floats(0.5, 1.0), st.floats(0, 50))
def test_never_above_nameplate_and_monotone_in_soc(spec, eff, bump):
    base = _run(spec, eff)
    nameplate = base.sites["nameplate_kw"].to_numpy()[:, None]
    assert (base.deliverable_kw >= 0).all()
    assert (base.deliverable_kw <= nameplate + 1e-9).all()
    total = base.deliverable_kw + sum(base.losses_kw.values())
    assert np.allclose(total, nameplate)
    higher = _run(spec, eff, bump)
    assert (higher.deliverable_kw >= base.deliverable_kw - 1e-9).all()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(1, 30), st.floats(0.01, 0.99), st.integers(0, 10_000))
def test_fleet_quantile_never_above_sum_of_site_maxima(n_sites, n_days, level, seed):
    x = np.random.default_rng(seed).uniform(0, 10, size=(n_sites, n_days))
    q = exceedance_quantile(x.sum(axis=0), level)
    assert q <= x.max(axis=1).sum() + 1e-9
    # and the exceedance definition holds: at least `level` of days reach it
    assert (x.sum(axis=0) >= q).mean() >= level - 1e-9
