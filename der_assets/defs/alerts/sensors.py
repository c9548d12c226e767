"""Failed runs and failed checks reach operators through der_assets.notify, with a link to the run and check.

After each alert (and after every successful run, which may have raised its own, such as
under-delivery) the `operator_alerts` asset is reported with the latest stored alerts, so the
UI shows them without a run of its own.
"""

import dagster as dg

from der_assets.defs.alerts.assets import refresh_operator_alerts
from der_assets.notify import alert

MAX_FACTS = 4  # numbers from a failed check's metadata quoted in its alert


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def _root_cause(error) -> str | None:
    """The innermost error's first line: the user's exception, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return _first_line(error.message)


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def run_failure_alerts(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    steps = [f"{e.dagster_event.step_key}: {_root_cause(e.dagster_event.step_failure_data.error)}"
             for e in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
             if e.dagster_event.step_failure_data.error is not None]
    alert("run_failed", f"run of {run.job_name} failed", job=run.job_name, partition=run.tags.get("dagster/partition"),
          error="; ".join(steps) or _first_line(context.failure_event.message), run_id=run.run_id)
    refresh_operator_alerts(context.instance)


def _facts(metadata: dict) -> str | None:
    """The check's numeric metadata, e.g. 'num_problems 3, gap_pct 4.2'."""
    facts = [f"{k} {v.value:g}" if isinstance(v.value, float) else f"{k} {v.value}" for k, v in metadata.items()
             if isinstance(getattr(v, "value", None), (int, float)) and not isinstance(v.value, bool)]
    return ", ".join(facts[:MAX_FACTS]) or None


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING,
                      minimum_interval_seconds=30)
def check_failure_alerts(context: dg.RunStatusSensorContext):
    """Every failed check of a finished run, once (the run succeeded; its checks may not have)."""
    run = context.dagster_run
    for entry in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        # a check that alerts for itself (event_performance's delivery: once, on the final figure) says so
        if not evaluation.passed and "alert_policy" not in (evaluation.metadata or {}):
            asset = evaluation.asset_key.to_user_string()
            alert("check_failed", f"check {evaluation.check_name} failed on {asset}",
                  severity=evaluation.severity.name, partition=evaluation.partition,
                  found=_facts(evaluation.metadata or {}), run_id=run.run_id, asset=asset, check=evaluation.check_name)
    refresh_operator_alerts(context.instance)
