"""Promotion gates: plain functions from an evaluation and thresholds to a pass/fail with the numbers."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplatform.lib.evaluation.metrics import HIGHER_IS_BETTER, METRICS, Evaluation

GATES = ("floors", "no_regression", "fairness", "prediction_contract")


@dataclass(frozen=True)
class Thresholds:
    """The gates' thresholds (from the spec's `Gates`, overridable as run config)."""

    floors: dict[str, float]
    ceilings: dict[str, float]
    max_regression: dict[str, float]
    max_relative_regression: dict[str, float]
    fairness_bounds: dict[str, float]


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: `description` names every failing number against its threshold."""

    name: str
    passed: bool
    description: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _unknown(names: dict[str, float], known: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown metric(s) {unknown}; expected some of {', '.join(known)}")


def bound_failures(m: dict[str, float], floors: dict[str, float], ceilings: dict[str, float]) -> list[str]:
    """Each metric of `m` below its floor or above its ceiling (NaN fails), named with both numbers."""
    failures = [f"{k} {m[k]:.4f} < floor {v:.4f}" for k, v in floors.items() if not m[k] >= v]
    return failures + [f"{k} {m[k]:.4f} > ceiling {v:.4f}" for k, v in ceilings.items() if not m[k] <= v]


def floors(evaluation: Evaluation, t: Thresholds) -> GateResult:
    """Absolute bounds: each metric at least its floor (or at most its ceiling)."""
    _unknown(t.floors, METRICS, "floors")
    _unknown(t.ceilings, METRICS, "ceilings")
    m = evaluation.candidate.metrics
    failures = bound_failures(m, t.floors, t.ceilings)
    numbers = {k: {"value": m[k], "floor": v} for k, v in t.floors.items()}
    numbers |= {k: {"value": m[k], "ceiling": v} for k, v in t.ceilings.items()}
    ok = ", ".join(f"{k} {m[k]:.4f}" for k in [*t.floors, *t.ceilings])
    passed = f"within bounds: {ok}" if ok else "no floors or ceilings configured"
    return GateResult("floors", not failures, "; ".join(failures) or passed, numbers)


def no_regression(evaluation: Evaluation, t: Thresholds, champion_version: str | None) -> GateResult:
    """Against the champion on the same rows: no metric drops by more than its absolute or relative tolerance."""
    _unknown(t.max_regression, METRICS, "max_regression")
    _unknown(t.max_relative_regression, METRICS, "max_relative_regression")
    if evaluation.champion is None:
        return GateResult("no_regression", True, "no champion yet: the floors alone decide", {"champion": None})
    cand, champ = evaluation.candidate.metrics, evaluation.champion.metrics
    failures: list[str] = []
    numbers: dict[str, Any] = {"champion": champion_version}
    for metric in sorted(set(t.max_regression) | set(t.max_relative_regression)):
        sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
        drop = sign * (champ[metric] - cand[metric])  # > 0: the candidate is worse
        relative = drop / abs(champ[metric]) if champ[metric] else (0.0 if drop <= 0 else float("inf"))
        numbers[metric] = {"candidate": cand[metric], "champion": champ[metric], "drop": drop,
                           "relative_drop": relative}
        if metric in t.max_regression and drop > t.max_regression[metric]:
            failures.append(f"{metric} {cand[metric]:.4f} vs champion v{champion_version} {champ[metric]:.4f}: "
                            f"drop {drop:.4f} > allowed {t.max_regression[metric]:.4f}")
        if metric in t.max_relative_regression and relative > t.max_relative_regression[metric]:
            failures.append(f"{metric} {cand[metric]:.4f} vs champion v{champion_version} {champ[metric]:.4f}: "
                            f"relative drop {relative:.2%} > allowed {t.max_relative_regression[metric]:.2%}")
    summary = ", ".join(f"{k} {cand[k]:.4f} vs {champ[k]:.4f}" for k in numbers if k != "champion")
    return GateResult("no_regression", not failures, "; ".join(failures) or f"no regression vs champion "
                      f"v{champion_version}: {summary}", numbers)


def fairness(evaluation: Evaluation, t: Thresholds, min_slice_rows: int) -> GateResult:
    """Each disparity metric over the sensitive slices within its bound."""
    measured = evaluation.candidate.fairness
    if not measured:
        return GateResult("fairness", True, "the spec names no sensitive attribute", {})
    _unknown(t.fairness_bounds, tuple(measured), "fairness_bounds")
    failures = [f"{k} {measured[k]:.4f} > bound {v:.4f}" for k, v in t.fairness_bounds.items() if not measured[k] <= v]
    slices = evaluation.candidate.slices
    skipped = sorted(slices.index[~slices["judged"]]) if len(slices) else []
    numbers: dict[str, dict[str, Any]] = {k: {"value": measured[k], "bound": t.fairness_bounds.get(k)}
                                          for k in measured}
    numbers["selection_rate_by_slice"] = {str(k): round(float(v), 4) for k, v in slices["selection_rate"].items()}
    if skipped:
        numbers["slices_below_min_rows"] = {"slices": skipped, "min_rows": min_slice_rows}
    worst = slices[slices["judged"]]["selection_rate"] if len(slices) else None
    where = (f" (selection rate {worst.idxmax()} {worst.max():.3f} vs {worst.idxmin()} {worst.min():.3f})"
             if worst is not None and len(worst) else "")
    ok = ", ".join(f"{k} {measured[k]:.4f} ≤ {v:.4f}" for k, v in t.fairness_bounds.items())
    return GateResult("fairness", not failures, ("; ".join(failures) + where) if failures else f"within bounds: {ok}",
                      numbers)


def prediction_contract(expected_rows: int, in_memory: np.ndarray, registered: np.ndarray) -> GateResult:
    """The scores are probabilities, one per row, and the registered model (what gets packaged) gives the same."""
    problems = []
    if in_memory.ndim != 2 or in_memory.shape != (expected_rows, 2):
        problems.append(f"predict_proba shape {in_memory.shape}, expected ({expected_rows}, 2)")
    else:
        if not np.isfinite(in_memory).all():
            problems.append(f"{int((~np.isfinite(in_memory)).any(axis=1).sum())} row(s) with non-finite scores")
        elif in_memory.min() < 0 or in_memory.max() > 1:
            problems.append(f"scores outside [0, 1]: min {in_memory.min():.4g}, max {in_memory.max():.4g}")
        elif np.abs(in_memory.sum(axis=1) - 1).max() > 1e-6:
            problems.append("class probabilities do not sum to 1"
                            f" (max error {np.abs(in_memory.sum(axis=1) - 1).max():.3g})")
    registered = np.asarray(registered, dtype=float).reshape(-1)
    if registered.shape != (expected_rows,):
        problems.append(f"registered model returned {registered.shape[0]} score(s) for {expected_rows} rows")
    elif in_memory.shape == (expected_rows, 2):
        delta = float(np.nanmax(np.abs(registered - in_memory[:, 1]))) if expected_rows else 0.0
        if not delta <= 1e-9:
            problems.append(f"registered model's scores differ from the trained pipeline's by up to {delta:.3g}")
    numbers = {"rows": expected_rows, "shape": list(in_memory.shape)}
    return GateResult("prediction_contract", not problems, "; ".join(problems) or
                      f"{expected_rows} rows → {expected_rows} probabilities in [0, 1], registered model identical",
                      numbers)


def run_gates(evaluation: Evaluation, t: Thresholds, champion_version: str | None, min_slice_rows: int,
              registered_scores: np.ndarray, in_memory_proba: np.ndarray) -> list[GateResult]:
    """Every gate, in the order of `GATES`."""
    return [floors(evaluation, t), no_regression(evaluation, t, champion_version),
            fairness(evaluation, t, min_slice_rows),
            prediction_contract(evaluation.holdout_rows, in_memory_proba, registered_scores)]
