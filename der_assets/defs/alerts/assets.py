"""The alerts operators were sent, as an asset the UI shows: a table of the latest, with links."""

import logging

import dagster as dg

from der_assets import config
from der_assets.notify import stored_alerts

log = logging.getLogger(__name__)
SHOWN = 50

operator_alerts = dg.AssetSpec(
    "operator_alerts", group_name="review", kinds={"sql"},
    description="Every alert sent (failed runs, failed checks, under-delivery): readable text, channels and the "
                "link to its run or check. Reported by the alert sensors after each alert; `der alerts list` "
                "reads the same table.")


def alerts_metadata(engine) -> dict:
    frame = stored_alerts(engine, limit=SHOWN)
    shown = frame.assign(created_at=frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         channels=frame["channels"].replace("", "log only"))
    lines = [f"- {r.created_at} **{r.kind}**: {r.text}" for r in shown.itertuples()]
    return {
        "last_alert_id": int(frame["alert_id"].max()) if len(frame) else 0,
        "alerts_shown": len(frame),
        "latest": dg.MetadataValue.md("\n".join(lines) or "no alert yet"),
        "table": dg.MetadataValue.table(
            records=[dg.TableRecord({k: "" if v is None else str(v) for k, v in r.items()})
                     for r in shown[["alert_id", "created_at", "kind", "title", "channels", "run_url", "check_url"]]
                     .to_dict("records")],
            schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in
                                           ("alert_id", "created_at", "kind", "title", "channels", "run_url",
                                            "check_url")])),
    }


def refresh_operator_alerts(instance: dg.DagsterInstance) -> bool:
    """Report operator_alerts when an alert was stored since its last report; never raises into a sensor."""
    try:
        from der_assets.warehouse import connect_warehouse

        engine = connect_warehouse(config.warehouse_url())
        metadata = alerts_metadata(engine)
        engine.dispose()
        latest = instance.get_latest_materialization_event(operator_alerts.key)
        seen = latest.asset_materialization.metadata.get("last_alert_id") if latest else None
        if metadata["last_alert_id"] == 0 or (seen is not None and seen.value >= metadata["last_alert_id"]):
            return False
        instance.report_runless_asset_event(dg.AssetMaterialization(operator_alerts.key, metadata=metadata))
        return True
    except Exception as exc:  # noqa: BLE001 - showing alerts must not stop them being sent
        log.error("operator_alerts could not be reported: %s", exc)
        return False
