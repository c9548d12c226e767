"""Generac PWRcell's vendor SunSpec model 64259 ("site_energy"): lifetime energy counters.

Verification status: DOC-BASED on Generac's published model definition (model_64259.json, as
shipped in the vendor-model set that der_assets_tests/fixtures/generac_pwrcell holds; a test
compares this layout with it) and tested against the twin's PWRcell server.

The standard models a PWRcell exposes (101-103, 124) carry no battery or grid energy counter;
64259 does, as uint64 watt-seconds: bat_out (DC energy discharged), bat_in (DC energy into the
battery), net_out (AC energy exported from the site) and net_in (AC energy imported). The
connector keeps a vendor model's raw registers (its body, after ID and L), and this module
decodes them. battery_kwh is therefore DC-side energy, discharge minus charge; grid_kwh is import
minus export at the site's connection. A uint64 of all ones is SunSpec's "not implemented".
"""

from __future__ import annotations

from typing import Optional

MODEL_ID = 64259
#: point name, registers, in order from the model body's first register (after ID and L)
LAYOUT = (
    ("time", 2), ("sysmode", 1), ("alarms", 1), ("bat_soc", 1), ("sf_10", 1), ("inv_state", 1),
    ("dcgenerator_power", 1), ("generation", 4), ("consumption", 4), ("bat_out", 4), ("bat_in", 4),
    ("net_out", 4), ("net_in", 4), ("inv_out", 4), ("inv_in", 4), ("dcgenerator_out", 4), ("dcgenerator_in", 4),
    ("net_out_var", 4), ("net_in_var", 4), ("gen_power", 1), ("inv_power", 1), ("net_power", 1), ("bat_power", 1),
    ("max_sink_power", 1), ("max_source_power", 1), ("Pad5", 1), ("Pad6", 1),
)
COUNTERS_WS = ("bat_out", "bat_in", "net_out", "net_in")  # uint64, watt-seconds
LENGTH = sum(n for _, n in LAYOUT)  # 64, the model's L
_OFFSET = {}
_at = 0
for _name, _n in LAYOUT:
    _OFFSET[_name] = (_at, _n)
    _at += _n
_NOT_IMPLEMENTED = 2**64 - 1


def counters_wh(registers) -> Optional[dict[str, float]]:
    """bat_out, bat_in, net_out, net_in in Wh (NaN where not implemented) from a 64259 body's
    registers, or None when the body is not a whole 64259 model (then nothing is read from it)."""
    if not isinstance(registers, list) or len(registers) < LENGTH:
        return None
    if not all(type(r) is int and 0 <= r <= 0xFFFF for r in registers[:LENGTH]):
        return None
    out = {}
    for name in COUNTERS_WS:
        at, n = _OFFSET[name]
        value = 0
        for r in registers[at:at + n]:
            value = (value << 16) | r
        out[name] = float("nan") if value == _NOT_IMPLEMENTED else value / 3600.0
    return out
