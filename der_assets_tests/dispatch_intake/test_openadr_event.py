"""oadrDistributeEvent -> Instruction on real payloads, parsed by openleadr's own parser.

Hand checks for the EPRI fixture (distribute_event_1event2signals.xml): the active period is
dtstart 2015-06-26T18:00:00Z, PT120M, so 18:00-20:00 UTC; createdDateTime 17:52:34Z. Of its two
signals, ENERGY_PRICE (2 x PT60M: 0.5, 0.75) is a price and is ignored; "simple" (lower case,
3 x PT40M: levels 0, 1, 2) is the dispatch signal, so 40-minute intervals with the configured
kW of levels 0, 1, 2.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

pytest.importorskip("openleadr")
from openleadr import objects  # noqa: E402
from openleadr.messaging import create_message, parse_message  # noqa: E402

from der_assets.dispatch.errors import DispatchInputError  # noqa: E402
from der_assets.dispatch.intake.openadr import event_cancelled, instruction_from_event, is_test_event  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"  # EPRI OpenADR-VEN-Library payloads, verbatim (see SOURCE.md)
UTC = dt.timezone.utc
LEVELS = {0: 0.0, 1: 500.0, 2: 1000.0}


def fixture_event(name: str) -> dict:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {path} not present")
    message_type, payload = parse_message(path.read_bytes())
    assert message_type == "oadrDistributeEvent"
    assert len(payload["events"]) == 1
    return payload["events"][0]


def test_epri_two_signal_event_uses_the_simple_signal():
    event = fixture_event("distribute_event_1event2signals.xml")
    ins = instruction_from_event(event, iso="PJM", resource_id="AGG-1", simple_levels_kw=LEVELS)
    assert ins.instruction_id == "71dd232a8dab3b1a7279"
    assert ins.modification == 0
    assert ins.issued_at == dt.datetime(2015, 6, 26, 17, 52, 34, tzinfo=UTC)
    assert ins.start == dt.datetime(2015, 6, 26, 18, 0, tzinfo=UTC)
    assert ins.end == dt.datetime(2015, 6, 26, 20, 0, tzinfo=UTC)
    assert ins.interval_minutes == 40
    assert ins.target_kw.tolist() == [0.0, 500.0, 1000.0]
    assert [t.isoformat() for t in ins.interval_start] == [
        "2015-06-26T18:00:00+00:00", "2015-06-26T18:40:00+00:00", "2015-06-26T19:20:00+00:00"]
    assert (ins.iso, ins.resource_id) == ("PJM", "AGG-1")  # the event targets only a venID
    assert not event_cancelled(event) and not is_test_event(event)


def test_simple_levels_are_never_guessed():
    event = fixture_event("distribute_event_1event2signals.xml")
    with pytest.raises(DispatchInputError, match="simple_levels_kw") as err:
        instruction_from_event(event, iso="PJM", resource_id="AGG-1")
    assert err.value.field == "event_signals"
    with pytest.raises(DispatchInputError, match="level 2"):
        instruction_from_event(event, iso="PJM", resource_id="AGG-1", simple_levels_kw={0: 0, 1: 500})


def test_price_only_event_is_rejected_naming_its_signals():
    event = fixture_event("distribute_event_active.xml")
    with pytest.raises(DispatchInputError, match="ENERGY_PRICE/price"):
        instruction_from_event(event, iso="PJM", resource_id="AGG-1", simple_levels_kw=LEVELS)


def test_no_resource_anywhere_is_rejected():
    event = fixture_event("distribute_event_1event2signals.xml")
    with pytest.raises(DispatchInputError) as err:
        instruction_from_event(event, iso="PJM", resource_id=None, simple_levels_kw=LEVELS)
    assert err.value.field == "resource_id"


def test_open_ended_event_is_rejected():
    event = copy.deepcopy(fixture_event("distribute_event_1event2signals.xml"))
    event["active_period"]["duration"] = dt.timedelta(0)
    with pytest.raises(DispatchInputError, match="open-ended"):
        instruction_from_event(event, iso="PJM", resource_id="AGG-1", simple_levels_kw=LEVELS)


def _load_dispatch_event(status: str = "far", modification: int = 3) -> dict:
    """A LOAD_DISPATCH setpoint in MW, serialized and re-parsed by openleadr (so the dict shape is its own)."""
    t0 = dt.datetime(2026, 7, 15, 18, 0, tzinfo=UTC)
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="evt-ld", modification_number=modification, market_context="http://pjm.example/capacity",
            event_status=status, created_date_time=dt.datetime(2026, 7, 15, 17, 40, tzinfo=UTC)),
        active_period=objects.ActivePeriod(dtstart=t0, duration=dt.timedelta(minutes=90)),
        event_signals=[
            objects.EventSignal(
                intervals=[objects.Interval(dtstart=t0, duration=dt.timedelta(minutes=30), signal_payload=1.5, uid=0),
                           objects.Interval(dtstart=t0 + dt.timedelta(minutes=30), duration=dt.timedelta(minutes=60),
                                            signal_payload=2.0, uid=1)],
                signal_name="LOAD_DISPATCH", signal_type="setpoint", signal_id="sig-1",
                measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="M",
                                                power_attributes=objects.PowerAttributes(hertz=60, voltage=120, ac=True))),
            objects.EventSignal(intervals=[objects.Interval(dtstart=t0, duration=dt.timedelta(minutes=90),
                                                            signal_payload=0.12, uid=0)],
                                signal_name="ELECTRICITY_PRICE", signal_type="price", signal_id="sig-2"),
        ],
        targets=[objects.Target(resource_id="AGG-7")],
        response_required="always",
    )
    event.event_descriptor.event_status = status  # objects.Event recomputes the status from the clock
    _, payload = parse_message(create_message("oadrDistributeEvent", request_id="r1", vtn_id="VTN", events=[event]))
    return payload["events"][0]


def test_load_dispatch_setpoint_in_mw_on_the_gcd_grid():
    ins = instruction_from_event(_load_dispatch_event(), iso="NYISO", resource_id=None)
    # 30 min at 1.5 MW then 60 min at 2 MW -> three 30-minute intervals, in kW
    assert (ins.interval_minutes, ins.target_kw.tolist()) == (30, [1500.0, 2000.0, 2000.0])
    assert (ins.start.isoformat(), ins.end.isoformat()) == ("2026-07-15T18:00:00+00:00", "2026-07-15T19:30:00+00:00")
    assert (ins.resource_id, ins.modification, ins.iso) == ("AGG-7", 3, "NYISO")
    with pytest.raises(DispatchInputError, match="not AGG-1"):
        instruction_from_event(_load_dispatch_event(), iso="NYISO", resource_id="AGG-1")


def test_cancelled_event_still_converts_and_is_flagged():
    event = _load_dispatch_event(status="cancelled", modification=4)
    assert event_cancelled(event)
    assert instruction_from_event(event, iso="NYISO", resource_id="AGG-7").modification == 4
