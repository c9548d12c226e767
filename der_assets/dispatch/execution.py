"""Carrying out a plan: setpoints at each interval start, acknowledgements, re-dispatch, release.

- Each interval's setpoints go out `lead_s` before its start, so that the devices' command
  latency and ramp are spent before the interval rather than inside it (the twin: 30 s latency,
  then full power within a minute; 60 s of lead centres that), with a device-side duration of
  two intervals: a battery whose next command never comes (the run died) reverts to
  self-consumption on its own within two intervals.
- A battery that refuses or cannot be reached is dropped, and `replan` spreads the rest of the
  instruction over the batteries still answering (its share is re-dispatched).
- A commanded battery whose setpoint falls to zero is held at 0 kW for the rest of the event
  (the plan assumes no charging during an event; released to self-consumption it would charge
  from PV and cancel other batteries' delivery at the meter). When the event ends, or anything
  goes wrong, every battery that was ever commanded is released. A device is never left
  discharging by this code.
The clock and sleep are injected: the platform uses the wall clock, and tests use the twin's.
An event takes real time, so each interval's outcome is handed to `on_interval` as it happens
(an `IntervalProgress`): the Dagster step logs it as one readable line and stores it, so an
operator sees the event while it runs instead of an "executing" step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd

from der_assets.dispatch.adapters import Ack

Send = Callable[[str, str, str, float | None, int], Awaitable[Ack]]
Replan = Callable[[set[str], pd.Timestamp], pd.DataFrame]


@dataclass(frozen=True)
class IntervalProgress:
    """What happened when one interval's setpoints went out."""

    interval_start: pd.Timestamp
    sent: int  # setpoints sent for the interval (holds and re-dispatched shares included)
    acknowledged: int
    failed: tuple[str, ...]  # batteries that refused or could not be reached in this interval
    replanned: int  # re-plans made in this interval (0 or 1)
    commanded_kw: float  # sum of the acknowledged setpoints
    discharging: tuple[str, ...] = ()  # batteries that acknowledged a discharge setpoint in this interval

    def line(self, delivered_kwh: float | None = None, instructed_kwh: float | None = None,
             reporting: tuple[int, int] | None = None) -> str:
        """The interval as one log line; delivered-so-far when telemetry has measured some of it
        (`reporting`: batteries measured so far of those discharging, when not all are)."""
        failed = f"{len(self.failed)} failed" + (f" ({', '.join(self.failed)})" if self.failed else "")
        so_far = ("delivered so far not yet measured" if delivered_kwh is None
                  else f"delivered so far {delivered_kwh:.1f} kWh"
                  + (f" of {instructed_kwh:.1f} kWh" if instructed_kwh is not None else "")
                  + (f" ({reporting[0]} of {reporting[1]} batteries reporting)"
                     if reporting is not None and reporting[0] < reporting[1] else ""))
        return (f"interval {self.interval_start.strftime('%H:%MZ')}: {self.sent} setpoints sent, "
                f"{self.acknowledged} acknowledged, {failed}, re-planned {self.replanned}, "
                f"{self.commanded_kw:.1f} kW commanded; {so_far}")


@dataclass
class ExecutionReport:
    acks: list[Ack] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    replans: int = 0
    released: set[str] = field(default_factory=set)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([a.__dict__ for a in self.acks])


async def execute_plan(
    plan: pd.DataFrame,
    batteries: pd.DataFrame,
    *,
    end: pd.Timestamp,
    interval_s: int,
    send: Send,
    now: Callable[[], pd.Timestamp],
    sleep: Callable[[float], Awaitable[None]],
    replan: Replan | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    lead_s: float = 0.0,
    on_interval: Callable[[IntervalProgress], None] | None = None,
) -> ExecutionReport:
    """Send `plan` (battery_id, interval_start, setpoint_kw) interval by interval until `end`.

    batteries: battery_id, site_id, source for every battery in the plan.
    on_interval: called once per interval, after its setpoints (and any re-dispatch) went out.
    """
    info = batteries.set_index("battery_id")
    report = ExecutionReport()
    active: set[str] = set()  # batteries holding a setpoint (possibly 0 kW) until the event ends
    commanded: set[str] = set()
    plan = plan.assign(interval_start=pd.to_datetime(plan["interval_start"], utc=True))
    hold_s = 2 * interval_s
    step = pd.Timedelta(seconds=interval_s)

    async def command(ids_setpoints: list[tuple[str, float | None]]) -> list[Ack]:
        acks = await asyncio.gather(*[send(b, info.loc[b, "site_id"], info.loc[b, "source"], sp, hold_s)
                                      for b, sp in ids_setpoints])
        report.acks.extend(acks)
        return list(acks)

    try:
        for t in sorted(plan["interval_start"].unique()):
            t = pd.Timestamp(t)
            if cancelled():
                break
            wait_s = (t - now()).total_seconds() - lead_s
            if wait_s > 0:
                await sleep(wait_s)
            if t + step <= now():
                continue  # already over (a run resumed late): a setpoint for the past only disturbs the site
            due = plan[(plan["interval_start"] == t) & ~plan["battery_id"].isin(report.failed)]
            orders = [(b, float(sp)) for b, sp in zip(due["battery_id"], due["setpoint_kw"], strict=True)
                      if sp > 1e-6 or b in active]  # renew holds every interval: device timers revert them
            orders = [(b, sp if sp > 1e-6 else 0.0) for b, sp in orders]
            hold = [(b, 0.0) for b in active - {b for b, _ in orders} - report.failed]
            acks = await command(orders + hold)
            interval_acks = list(acks)
            for ack in acks:
                if ack.setpoint_kw is None:
                    active.discard(ack.battery_id)
                    continue
                commanded.add(ack.battery_id)
                if ack.ok:
                    active.add(ack.battery_id)
                else:
                    report.failed.add(ack.battery_id)
                    active.discard(ack.battery_id)
            newly_failed = {a.battery_id for a in acks if not a.ok and a.setpoint_kw is not None}
            if newly_failed and replan is not None:
                later = replan(set(report.failed), t)  # the rest of the event without the failed batteries
                report.replans += 1
                keep = plan[plan["interval_start"] <= t]
                plan = pd.concat([keep, later.assign(interval_start=pd.to_datetime(later["interval_start"], utc=True))],
                                 ignore_index=True)
                retry = later[later["interval_start"] == t]
                extra = [(b, float(sp)) for b, sp in zip(retry["battery_id"], retry["setpoint_kw"], strict=True)
                         if sp > 1e-6 and b not in report.failed]
                if extra:
                    more = await command(extra)
                    interval_acks += more
                    for ack in more:
                        commanded.add(ack.battery_id)
                        (active.add if ack.ok else report.failed.add)(ack.battery_id)
            if on_interval is not None:
                holding = {a.battery_id: a for a in interval_acks}  # a re-dispatched share supersedes the first
                holding = [a for a in holding.values() if a.ok]
                on_interval(IntervalProgress(
                    interval_start=t, sent=len(interval_acks), acknowledged=sum(a.ok for a in interval_acks),
                    failed=tuple(sorted({a.battery_id for a in interval_acks if not a.ok})),
                    replanned=1 if newly_failed and replan is not None else 0,
                    commanded_kw=round(sum(a.setpoint_kw or 0.0 for a in holding), 3),
                    discharging=tuple(sorted(a.battery_id for a in holding if a.setpoint_kw))))
        wait_s = (end - now()).total_seconds()
        if wait_s > 0 and not cancelled():
            await sleep(wait_s)
    finally:
        if commanded:
            acks = await command([(b, None) for b in sorted(commanded)])
            report.released = {a.battery_id for a in acks if a.ok}
    return report
