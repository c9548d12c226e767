"""Dispatch: split an ISO instruction across a battery fleet (pure Python, no Dagster).

Entry points: ``plan_from_files`` (the ``der dispatch plan`` file contract), ``solve_fast`` (the
structured optimizer), ``solve_reference`` (the monolithic cvxpy formulation), the two rule
baselines and ``compare_plans``. See docs/dispatch.md.
"""

from der_assets.dispatch.baselines import iso_first, self_consumption_first
from der_assets.dispatch.compare import compare_plans, gini
from der_assets.dispatch.contract import (
    Instruction,
    build_problem,
    parse_instruction,
    plan_frame,
    plan_from_files,
    read_fleet,
    read_forecast,
    read_instruction,
)
from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.optimizer import (
    DispatchPlan,
    check_hard_constraints,
    evaluate_plan,
    min_shortfall_lp,
    solve_fast,
    solve_reference,
)
from der_assets.dispatch.problem import DispatchProblem, Prices

__all__ = [
    "DispatchInputError",
    "DispatchPlan",
    "DispatchProblem",
    "Instruction",
    "Prices",
    "build_problem",
    "check_hard_constraints",
    "compare_plans",
    "evaluate_plan",
    "gini",
    "iso_first",
    "min_shortfall_lp",
    "parse_instruction",
    "plan_frame",
    "plan_from_files",
    "read_fleet",
    "read_forecast",
    "read_instruction",
    "self_consumption_first",
    "solve_fast",
    "solve_reference",
]
