"""The fuzz suite's short run (part of `make test`; `make fuzz` is the long one) and its seed corpus.

corpus/ holds every case that once failed a property (the review's cases of issue 17 and what
the fuzzer found), each a file with the payload itself; each must now hold every property.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from der_assets.telemetry.parsers.enphase import V4_MANY
from der_assets.telemetry.schema import empty_frame

from .properties import check, from_corpus, has_fast_path, stated_instants, unsupported
from .run import run
from .seeds import all_seeds

CORPUS = Path(__file__).resolve().parent / "corpus"
SHORT_RUN_CASES = 50  # 3-5 s here; `make fuzz` runs 20,000


def _corpus():
    return sorted(CORPUS.glob("*.json"))


def test_the_corpus_holds_the_reviews_cases():
    entries = [json.loads(p.read_text()) for p in _corpus()]
    assert len(entries) >= 20
    assert {e["source"] for e in entries} >= {"enphase", "sonnen", "sunspec", "solaredge", "fronius", "greenbutton"}


def _case(path: Path):
    """A corpus case; one marked "open" is a defect found and not yet fixed: xfail, strict, so the
    fix shows (remove the mark then)."""
    entry = json.loads(path.read_text())
    marks = [pytest.mark.xfail(strict=True, reason=entry["open"])] if entry.get("open") else []
    return pytest.param(path, marks=marks, id=path.stem)


@pytest.mark.parametrize("path", [_case(p) for p in _corpus()])
def test_a_case_that_once_failed_holds_every_property(path):
    entry = json.loads(path.read_text())
    seed, payload = from_corpus(entry)
    # both fleet-day paths for a case that once split them and for Enphase v4 (parse_v4_many is this suite's
    # own fast path); the batch readers' agreement on every source is the short run's and make fuzz's
    agree = has_fast_path(seed) and ("disagree" in entry["why"] or seed.endpoint in V4_MANY)
    verdict = check(seed, payload, time_limit_s=20, agree=agree)
    assert not verdict.failed, f"{entry['why']} -> now: {verdict.why()}"


def test_every_seed_parses_to_rows_that_hold_the_properties():
    for seed in all_seeds():  # the paths' agreement on seeds is the short run's (and test_fleet_day's)
        verdict = check(seed, seed.payload, time_limit_s=20)
        assert verdict.outcome == "rows" and verdict.rows > 0 and not verdict.failed, (seed.name, verdict)


def test_the_oracle_flags_an_unsupported_row_and_trusts_a_supported_one():
    payload = b'{"readings": [{"t": "2026-07-15T12:00:00+00:00"}, {"t": 1784203200}]}'  # a date, epoch seconds
    assert stated_instants(payload).tolist() == pd.to_datetime(["2026-07-15T12:00Z", "2026-07-16T12:00Z"]).asi8.tolist()
    rows = empty_frame().reindex(range(3))
    rows["interval_start"] = pd.to_datetime(["2026-07-15T11:45Z", "2026-07-16T23:00Z", "1996-07-15T12:00Z"], utc=True)
    rows["quality"] = ["measured", "estimated", "measured"]
    received = pd.Timestamp("2026-07-17T00:00Z")
    assert unsupported(rows, payload, received) == 1  # 1996 is a day and 15 h from nothing the payload says
    rows.loc[2, "quality"] = "missing"
    assert unsupported(rows, payload, received) == 0
    assert unsupported(rows, payload, pd.Timestamp("2026-07-14T00:00Z")) == 2  # after received_at + 1 day


def test_a_short_fuzz_run_finds_nothing():
    stats = run(SHORT_RUN_CASES, seed=20261208, agree_every=8, time_limit_s=20)
    assert stats["cases"] == SHORT_RUN_CASES
    assert stats["failures"] == []
    assert stats["rows"] > 0 and stats["parse_errors"] > 0 and stats["agreement_checks"] > 0
