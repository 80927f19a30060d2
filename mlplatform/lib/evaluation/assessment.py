"""A candidate's assessment: evaluation against the champion, the gates, and the report files, in one call."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.lib import predictions
from mlplatform.lib.evaluation import gates, metrics, report
from mlplatform.lib.training.train import TrainedModel, holdout_method
from mlplatform.lib.training.train import holdout as holdout_rows
from mlplatform.specs import TASK_FAIRNESS, Spec


@dataclass(frozen=True)
class Assessment:
    """What the evaluation asset publishes: numbers, gate outcomes and where the report is."""

    model: str
    version: str
    champion: str | None
    metrics: dict[str, float]
    gates: list[gates.GateResult]
    files: dict[str, Path]
    summary_md: str

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def version_hash(self) -> str:
        """A data version: the candidate, its numbers and its gate outcomes."""
        payload = json.dumps([self.model, self.version, self.champion, self.metrics,
                              [(g.name, g.passed) for g in self.gates]], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def card_facts(spec: Spec, candidate: TrainedModel, champion: str | None) -> report.CardFacts:
    lineage, reg = candidate.lineage, candidate.registered
    return report.CardFacts(
        model=reg.name, version=reg.version, description=spec.description, intended_use=spec.intended_use,
        estimator=candidate.params.estimator, params=candidate.params.__dict__, task=spec.task,
        feature_service=spec.feature_service_name, features=spec.feature_names,
        sensitive=spec.sensitive.name if spec.sensitive else None, partitions=candidate.partitions,
        train_rows=candidate.train_rows, training_set_version=candidate.training_set_version, champion=champion,
        dagster_run_id=lineage.get("dagster.run_id", ""), mlflow_run_id=reg.run_id,
        git_commit=lineage.get("git.commit", ""), lock_hash=lineage.get("lock.sha256", ""))


def assess(spec: Spec, candidate: TrainedModel, training_set: pd.DataFrame, champion: Any | None,
           champion_version: str | None, registered_predict: Callable[[pd.DataFrame], Any],
           thresholds: gates.Thresholds, threshold: float, min_slice_rows: int, folder: Path,
           min_calibration_rows: int | None = None) -> Assessment:
    """Evaluate the candidate (and champion) on the candidate's holdout, run every gate, write the report.

    `registered_predict` scores rows with the candidate as loaded back from the registry (the contract gate).
    """
    params = candidate.params
    holdout = holdout_rows(training_set, spec, params.holdout_days, params.seed)
    how = holdout_method(training_set, spec, params.holdout_days)
    result = metrics.evaluate(candidate.pipeline, champion, holdout, spec, threshold, min_slice_rows, params.seed, how)
    x = holdout[spec.feature_names]
    registered = np.asarray(registered_predict(x))  # what a consumer of the registry gets
    if spec.is_classification:  # the pyfunc answers predict_proba in the model's own class order
        registered = predictions.from_proba(registered, candidate.pipeline.classes_, spec)
    if min_calibration_rows is None:
        min_calibration_rows = spec.gates.min_calibration_rows
    outcomes = gates.run_gates(result, thresholds, champion_version, min_slice_rows, registered, candidate.output(x),
                               len(spec.classes), TASK_FAIRNESS[spec.task], min_calibration_rows)
    facts = card_facts(spec, candidate, champion_version)
    files = report.write_report(folder, result, outcomes, facts)
    summary = "\n\n".join([
        f"**{facts.model} v{facts.version}**"
        f" vs {'champion v' + champion_version if champion_version else 'no champion'}"
        f" — gates {'passed' if all(g.passed for g in outcomes) else 'FAILED'}",
        report.md_table(report.gate_table(outcomes)), report.md_table(report.comparison(result)),
        report.md_table(report.slice_table(result)) if len(result.candidate.slices) else "",
    ])
    return Assessment(facts.model, facts.version, champion_version, result.headline(), outcomes, files, summary)
