"""Failed runs and failed checks reach operators through der_assets.notify."""

import dagster as dg

from der_assets.notify import alert


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def run_failure_alerts(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    alert("run_failed", f"run {run.job_name} failed", run_id=run.run_id, job=run.job_name,
          partition=run.tags.get("dagster/partition"), error=context.failure_event.message)


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING,
                      minimum_interval_seconds=30)
def check_failure_alerts(context: dg.RunStatusSensorContext):
    """Every failed check of a finished run, once (the run succeeded; its checks may not have)."""
    run = context.dagster_run
    for entry in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed:
            alert("check_failed", f"check {evaluation.check_name} failed on {evaluation.asset_key.to_user_string()}",
                  partition=evaluation.partition, severity=str(evaluation.severity), run_id=run.run_id)
