"""Promotion gates: plain functions from an evaluation and thresholds to a pass/fail with the numbers."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplatform.lib.evaluation.metrics import Evaluation
from mlplatform.specs import Spec

GATES = ("floors", "no_regression", "fairness", "prediction_contract")


@dataclass(frozen=True)
class Thresholds:
    """The gates' thresholds (from the spec's `Gates`, overridable as run config)."""

    floors: dict[str, float]
    ceilings: dict[str, float]
    max_regression: dict[str, float]
    max_relative_regression: dict[str, float]
    fairness_bounds: dict[str, float]

    @classmethod
    def of(cls, spec: Spec) -> "Thresholds":
        """The spec's thresholds: its task's defaults merged with its own values."""
        return cls(**spec.gate_thresholds)


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: `description` names every failing number against its threshold."""

    name: str
    passed: bool
    description: str
    numbers: dict[str, Any] = field(default_factory=dict)
    judged: bool = True  # False: too little data to judge (passes, shown as a warning, never as a clean pass)


def _unknown(names: dict[str, float], known: Any, what: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown metric(s) {unknown}; expected some of {', '.join(sorted(known))}")


def bound_failures(m: dict[str, float], floors: dict[str, float], ceilings: dict[str, float]) -> list[str]:
    """Each metric of `m` below its floor or above its ceiling (NaN fails), named with both numbers."""
    failures = [f"{k} {m[k]:.4f} < floor {v:.4f}" for k, v in floors.items() if not m[k] >= v]
    return failures + [f"{k} {m[k]:.4f} > ceiling {v:.4f}" for k, v in ceilings.items() if not m[k] <= v]


CALIBRATION = "expected_calibration_error"


def floors(evaluation: Evaluation, t: Thresholds, min_calibration_rows: int = 0) -> GateResult:
    """Absolute bounds: each metric at least its floor (or at most its ceiling). The calibration error is not
    judged on a holdout of fewer than `min_calibration_rows` rows (said in the description)."""
    _unknown(t.floors, evaluation.directions, "floors")
    _unknown(t.ceilings, evaluation.directions, "ceilings")
    m, ceilings, note = evaluation.candidate.metrics, dict(t.ceilings), ""
    if CALIBRATION in ceilings and evaluation.holdout_rows < min_calibration_rows:
        del ceilings[CALIBRATION]
        note = (f"; {CALIBRATION} not judged: {evaluation.holdout_rows} holdout rows, fewer than "
                f"{min_calibration_rows}")
    failures = bound_failures(m, t.floors, ceilings)
    numbers = {k: {"value": m[k], "floor": v} for k, v in t.floors.items()}
    numbers |= {k: {"value": m[k], "ceiling": v} for k, v in ceilings.items()}
    ok = ", ".join(f"{k} {m[k]:.4f}" for k in [*t.floors, *ceilings])
    passed = f"within bounds: {ok}" if ok else "no floors or ceilings configured"
    return GateResult("floors", not failures, ("; ".join(failures) or passed) + note, numbers)


def no_regression(evaluation: Evaluation, t: Thresholds, champion_version: str | None) -> GateResult:
    """Against the champion on the same rows: no metric drops by more than its absolute or relative tolerance."""
    _unknown(t.max_regression, evaluation.directions, "max_regression")
    _unknown(t.max_relative_regression, evaluation.directions, "max_relative_regression")
    if evaluation.champion is None:
        return GateResult("no_regression", True, "no champion yet: the floors alone decide", {"champion": None})
    cand, champ = evaluation.candidate.metrics, evaluation.champion.metrics
    failures: list[str] = []
    numbers: dict[str, Any] = {"champion": champion_version}
    for metric in sorted(set(t.max_regression) | set(t.max_relative_regression)):
        sign = float(evaluation.directions[metric])
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


def fairness(evaluation: Evaluation, t: Thresholds, min_slice_rows: int, known: tuple[str, ...] = ()) -> GateResult:
    """Each disparity metric over the sensitive slices within its bound; "not judged" when fewer than two slices
    have `min_slice_rows` holdout rows (a disparity of noise is neither a pass nor a failure)."""
    measured, slices = evaluation.candidate.fairness, evaluation.candidate.slices
    if not len(slices):
        return GateResult("fairness", True, "the spec names no sensitive attribute", {})
    _unknown(t.fairness_bounds, known or tuple(measured), "fairness_bounds")
    sizes = {str(k): int(v) for k, v in slices["rows"].items()}
    if not measured:
        return GateResult("fairness", True, f"not judged: fewer than two slices have {min_slice_rows} holdout rows "
                          f"(rows per slice: {sizes})", {"rows_by_slice": sizes, "min_rows": min_slice_rows},
                          judged=False)
    failures = [f"{k} {measured[k]:.4f} > bound {v:.4f}" for k, v in t.fairness_bounds.items() if not measured[k] <= v]
    skipped = sorted(slices.index[~slices["judged"]])
    numbers: dict[str, Any] = {k: {"value": measured[k], "bound": t.fairness_bounds.get(k)} for k in measured}
    numbers["rows_by_slice"] = sizes
    if skipped:
        numbers["slices_below_min_rows"] = {"slices": skipped, "min_rows": min_slice_rows}
    where = ""
    rate = next((c for c in ("selection_rate", "accuracy", "mae") if c in slices), None)
    if rate is not None:
        numbers[f"{rate}_by_slice"] = {str(k): round(float(v), 4) for k, v in slices[rate].items()}
        worst = slices[slices["judged"]][rate]
        if failures and len(worst):
            where = (f" ({rate.replace('_', ' ')} {worst.idxmax()} {worst.max():.3f} vs {worst.idxmin()} "
                     f"{worst.min():.3f})")
    ok = ", ".join(f"{k} {measured[k]:.4f} ≤ {v:.4f}" for k, v in t.fairness_bounds.items())
    return GateResult("fairness", not failures, ("; ".join(failures) + where) if failures else f"within bounds: {ok}",
                      numbers)


def prediction_contract(task: str, classes: int, expected_rows: int, in_memory: np.ndarray,
                        registered: np.ndarray) -> GateResult:
    """One output per row (binary a probability; multiclass a probability per class summing to 1; regression a
    finite value), and the registered model (what gets packaged) gives exactly the same."""
    problems = []
    shape = (expected_rows, classes) if task == "multiclass" else (expected_rows,)
    in_memory = np.asarray(in_memory, dtype=float)
    if in_memory.shape != shape:
        problems.append(f"output shape {in_memory.shape}, expected {shape}")
    elif not np.isfinite(in_memory).all():
        bad = ~np.isfinite(in_memory)
        problems.append(f"{int((bad.any(axis=1) if bad.ndim == 2 else bad).sum())} row(s) with non-finite output")
    elif task != "regression" and (in_memory.min() < 0 or in_memory.max() > 1):
        problems.append(f"probabilities outside [0, 1]: min {in_memory.min():.4g}, max {in_memory.max():.4g}")
    elif task == "multiclass" and expected_rows and np.abs(in_memory.sum(axis=1) - 1).max() > 1e-6:
        problems.append("class probabilities do not sum to 1"
                        f" (max error {np.abs(in_memory.sum(axis=1) - 1).max():.3g})")
    registered = np.asarray(registered, dtype=float)
    if registered.shape != shape:
        problems.append(f"registered model returned shape {registered.shape} for {expected_rows} rows")
    elif in_memory.shape == shape:
        delta = float(np.nanmax(np.abs(registered - in_memory))) if expected_rows else 0.0
        if not delta <= 1e-9:
            problems.append(f"registered model's outputs differ from the trained pipeline's by up to {delta:.3g}")
    what = {"binary": "probabilities in [0, 1]", "multiclass": f"probability vectors over {classes} classes",
            "regression": "finite values"}[task]
    numbers = {"rows": expected_rows, "shape": list(in_memory.shape)}
    return GateResult("prediction_contract", not problems, "; ".join(problems) or
                      f"{expected_rows} rows → {expected_rows} {what}, registered model identical", numbers)


def run_gates(evaluation: Evaluation, t: Thresholds, champion_version: str | None, min_slice_rows: int,
              registered: np.ndarray, in_memory: np.ndarray, classes: int, fairness_metrics: tuple[str, ...] = (),
              min_calibration_rows: int = 0) -> list[GateResult]:
    """Every gate, in the order of `GATES`."""
    return [floors(evaluation, t, min_calibration_rows), no_regression(evaluation, t, champion_version),
            fairness(evaluation, t, min_slice_rows, fairness_metrics),
            prediction_contract(evaluation.task, classes, evaluation.holdout_rows, in_memory, registered)]
