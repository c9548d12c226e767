"""Operators' data-quality rules with Great Expectations 1.x: one suite per source, kept as JSON.

Pandera guards the code's contracts (schema.py); these suites hold the thresholds operators
tune themselves (value ranges per channel, completeness per day, plausibility against
nameplate), in `expectations/<source>.json`. `run_rules` validates one day's canonical rows
and renders the Data Docs HTML report into a folder the caller chooses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SUITES_DIR = Path(__file__).parent / "expectations"


@dataclass(frozen=True)
class RuleResult:
    source: str
    success: bool
    success_pct: float
    evaluated: int
    failed: list[dict]


def load_suites() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(SUITES_DIR.glob("*.json"))}


def prepare(rows: pd.DataFrame, nameplate_kw: pd.Series) -> pd.DataFrame:
    """Columns the suites refer to: the nameplate energy per interval and the absolute value."""
    rated = rows["device_id"].map(nameplate_kw)
    energy = rows["channel"].isin(["pv_kwh", "battery_kwh"])
    return rows.assign(
        nameplate_kwh=(rated * rows["interval_s"] / 3600.0).where(energy),
        abs_value=rows["value"].abs().where(energy),
        interval_start=rows["interval_start"].astype(str),
        received_at=rows["received_at"].astype(str),
    )


def run_rules(rows: pd.DataFrame, nameplate_kw: pd.Series, *, project_dir: Path, run_name: str) -> tuple[list[RuleResult], str | None]:
    """Validate each source's rows against its suite; returns results and the Data Docs index URL."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    # tqdm bars on stderr would fill every run's log ("Calculating Metrics: 41/41 ...")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_or_update_pandas("interval_telemetry")
    frame = prepare(rows, nameplate_kw)
    results, validations = [], []
    for source, spec in load_suites().items():
        part = frame[frame["source"] == source]
        if part.empty:
            continue
        suite = gx.ExpectationSuite(name=spec["name"])
        for e in spec["expectations"]:
            suite.add_expectation(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta")).to_domain_obj())
        suite = context.suites.add_or_update(suite)
        asset_name = f"{run_name}_{source}"
        try:
            asset = datasource.get_asset(asset_name)
        except LookupError:
            asset = datasource.add_dataframe_asset(asset_name)
        batch = next(iter(asset.batch_definitions), None) or asset.add_batch_definition_whole_dataframe("day")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=asset_name, data=batch, suite=suite))
        validations.append((source, definition, part))
    docs_url = None
    for source, definition, part in validations:
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"{definition.name}_checkpoint", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")]))
        outcome = checkpoint.run(batch_parameters={"dataframe": part})
        run = next(iter(outcome.run_results.values()))
        failed = [{"source": source, "expectation": r.expectation_config.type,
                   "column": str(r.expectation_config.kwargs.get("column", r.expectation_config.kwargs.get("column_B", ""))),
                   "unexpected_pct": round(float(r.result.get("unexpected_percent") or 0.0), 3)}
                  for r in run.results if not r.success]
        results.append(RuleResult(source=source, success=run.success, evaluated=len(run.results),
                                  success_pct=float(run.statistics["success_percent"] or 0.0), failed=failed))
    sites = context.get_docs_sites_urls()
    if sites:
        docs_url = sites[0]["site_url"]
    return results, docs_url
