"""The demo fleet reads pvlib's CEC inverter file without importing pvlib, and gets the same table."""

from __future__ import annotations

import pandas as pd

from der_assets.registry import demo


def test_cec_table_is_the_one_retrieve_sam_gives():
    import pvlib

    demo._cec_inverters.cache_clear()
    ours = demo._cec_inverters()
    table = pvlib.pvsystem.retrieve_sam("cecinverter").T
    table = table[pd.to_numeric(table["Vac"], errors="coerce") == 240.0]
    theirs = pd.DataFrame({"name": table.index, "paco_w": pd.to_numeric(table["Paco"]).to_numpy()})
    assert len(ours) > 1000
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True))
    # a name the demo picks from, normalized as pvlib does ("SolarEdge Technologies Ltd: SE7600H-US [240V]")
    assert "SolarEdge_Technologies_Ltd___SE7600H_US__240V_" in set(ours["name"])
