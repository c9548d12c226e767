"""Shared test helpers: fixture paths and small payload builders."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd

from der_assets.telemetry import parse_payload

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECEIVED = pd.Timestamp("2026-01-01T00:00:00Z")


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def fixture_json(*parts: str):
    return json.loads(fixture_bytes(*parts))


def sonnen_mock(filename: str, func: str):
    """The dict a MarkusBiggus mock function returns, read with ast (the file is never executed)."""
    src = FIXTURES.joinpath("sonnen_local_api", "MarkusBiggus_sonnen_api_v2", filename).read_text()
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            ret = next(n for n in node.body if isinstance(n, ast.Return))
            return ast.literal_eval(ret.value)
    raise KeyError(func)


def poll_log(*bodies) -> bytes:
    return "\n".join(json.dumps(b) for b in bodies).encode()


def parse(source, endpoint, payload, **kw):
    kw.setdefault("site_id", "SITE-1")
    kw.setdefault("received_at", RECEIVED)
    return parse_payload(source, endpoint, payload, **kw)


def channel(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df["channel"] == name].sort_values("interval_start").reset_index(drop=True)


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s).tz_convert("UTC") if pd.Timestamp(s).tzinfo else pd.Timestamp(s, tz="UTC")
