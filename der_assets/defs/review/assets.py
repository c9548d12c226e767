"""The review queue in the UI: open items by origin and issue, the oldest of them, and a check on their age.

The telemetry assets write the items (der_assets/review.py keeps resolutions across their
re-runs); this asset reads the table and shows it. It refreshes when a telemetry or AMI day is
rebuilt, and every hour, so the age check moves on even on a quiet day. Operators close items with
`der review resolve ID --note ...`.
"""

import os

import dagster as dg
import pandas as pd

from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.review import list_items, summary

DEFAULT_MAX_AGE_H = 24.0  # an open item nobody looked at for a day is overdue
OLDEST_SHOWN = 20


class ReviewSettings(dg.ConfigurableResource):
    """How old an open item may get (DER_REVIEW_MAX_AGE_H, default 24 h), and the time the ages are taken at
    (default: the platform clock's now)."""

    max_age_h: float | None = None
    as_of: str | None = None

    def max_age(self) -> float:
        if self.max_age_h is not None:
            return float(self.max_age_h)
        return float(os.environ.get("DER_REVIEW_MAX_AGE_H", DEFAULT_MAX_AGE_H))

    def now(self, clock: ClockResource) -> pd.Timestamp:
        return pd.Timestamp(self.as_of).tz_convert("UTC") if self.as_of else clock.clock().now()


@dg.asset(
    group_name="review",
    kinds={"sql"},
    deps=[dg.AssetDep("interval_telemetry", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("meter_intervals", partition_mapping=dg.AllPartitionMapping())],
    check_specs=[dg.AssetCheckSpec("open_items_age", asset="review_queue",
                                   description="No open review item is older than DER_REVIEW_MAX_AGE_H hours "
                                               f"(default {DEFAULT_MAX_AGE_H:g}).")],
    # any telemetry or AMI day rebuilt, or the top of the hour; never while a refresh runs
    automation_condition=(dg.AutomationCondition.any_deps_updated()
                          | dg.AutomationCondition.cron_tick_passed("0 * * * *")) & ~dg.AutomationCondition.in_progress(),
    description="Open review items (gaps, suspect values, quarantined payloads) by origin and issue, and the oldest "
                "of them; resolve with `der review resolve ID --note ...`.",
)
def review_queue(context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource,
                 review: ReviewSettings):
    items = list_items(warehouse.engine(), status=None)
    now = review.now(clock)
    max_age_h = review.max_age()
    s = summary(items, now=now, max_age_h=max_age_h)
    open_items = items[items["status"] == "open"]
    oldest = open_items.sort_values(["detected_at", "review_id"]).head(OLDEST_SHOWN)
    shown = ["review_id", "day", "origin", "site_id", "device_id", "channel", "issue", "first_interval",
             "n_intervals", "detected_at", "detail"]
    counts = items["status"].value_counts()
    context.log.info(f"review queue: {s['open']} open, {int(counts.get('resolved', 0))} resolved, "
                     f"{len(s['stale'])} open for more than {max_age_h:g} h")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": s["open"],
        "open_items": s["open"],
        "resolved_items": int(counts.get("resolved", 0)),
        "cleared_items": int(counts.get("cleared", 0)),
        "oldest_open_h": s["oldest_h"],
        "by_origin_issue": _table(s["by_origin_issue"]),
        "oldest_open": _table(oldest[shown]),
        "how_to_resolve": dg.MetadataValue.md("`der review list` shows every open item; "
                                              "`der review resolve ID --note TEXT` closes one, with history."),
    })
    yield dg.AssetCheckResult(
        check_name="open_items_age", passed=s["stale"].empty, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(s['stale'])} open item(s) first detected more than {max_age_h:g} h ago"
                     if len(s["stale"]) else f"no open item is older than {max_age_h:g} h"),
        metadata={"overdue_items": len(s["stale"]), "max_age_h": max_age_h,
                  "overdue": _table(s["stale"].sort_values("detected_at")[shown])})


review_automation = dg.AutomationConditionSensorDefinition(
    "review_automation", target=dg.AssetSelection.assets("review_queue"), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60)

