"""Feature drift of a batch of rows against a reference, with Evidently; the HTML report is written next to it.
For live traffic also the drift of the model's predictions: the served outputs of the task (binary the positive
class's probability, multiclass the predicted class, regression the value) against the reference model's outputs on
(a sample of) its training rows.

The test follows the size of the batch being judged: up to `LARGE_SAMPLE` rows, Kolmogorov-Smirnov (numeric) and
chi-squared (categorical) p-values, which account for how few rows there are; above it, where every p-value
becomes significant, the normed Wasserstein and Jensen-Shannon distances. (Evidently's own default chooses by
the reference's size only, which on a reference of thousands of rows judges a 50-row day by a distance and
flags noise as drift.)
"""

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.specs import Monitoring, Spec

LARGE_SAMPLE = 1000
PREDICTION_REFERENCE_ROWS = 20_000  # training rows the reference model scores for the prediction drift (seeded)


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's test: the method Evidently chose, its score and threshold, and whether it drifted."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The drift of one batch: per-feature tests, the drifted share and the severity it maps to."""

    columns: tuple[ColumnDrift, ...]
    current_rows: int
    reference_rows: int
    judged: bool  # False when the batch has fewer rows than the policy's minimum: no test is run
    severity: str
    prediction: ColumnDrift | None = None  # live traffic: the served outputs against the reference model's

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.columns],
                            columns=["column", "method", "score", "threshold", "drifted"])

    def summary(self) -> str:
        if not self.judged:
            return f"not judged: {self.current_rows} rows, fewer than the minimum sample"
        names = ", ".join(self.drifted) or "none"
        text = (f"{len(self.drifted)} of {len(self.columns)} features drifted ({self.share:.0%}, severity "
                f"{self.severity}): {names}")
        if self.prediction is not None:
            p = self.prediction
            text += (f"; predictions ({p.column}) {'drifted' if p.drifted else 'did not drift'} ({p.method} "
                     f"{p.score:.4g}, threshold {p.threshold:.4g})")
        return text


@dataclass(frozen=True)
class Baseline:
    """What a batch is judged against: a model version's training rows, and the versions passed over because
    they were trained on the batch itself (`model_version` is None when no version qualifies)."""

    model_version: str | None
    data_version: str
    is_champion: bool
    rows: pd.DataFrame | None
    skipped: tuple[str, ...]

    def whose(self) -> str:
        """The reference as the asset's metadata names it."""
        if self.is_champion:
            role = "champion"
        elif not self.skipped:
            role = "newest, none promoted"
        else:
            role = f"{', '.join(self.skipped)} {'was' if len(self.skipped) == 1 else 'were'} trained on this batch"
        return f"v{self.model_version} ({role})"

    def absent(self, partition: str | None) -> str:
        """Why there is nothing to judge against."""
        if self.skipped:
            return (f"every registered model ({', '.join(self.skipped)}) was trained on {partition}: nothing "
                    "independent to compare against")
        return "no registered model yet: nothing to compare against"


def baseline(references: Iterable[Any], read: Callable[[Any], pd.DataFrame], partition: str | None) -> Baseline:
    """The first of `references` (best first: the champion, then the newest) whose training rows, as `read` gives
    them, do not contain `partition` (a landed batch; None for live traffic, which no training set holds): a batch
    is never judged against a model trained on it (the daemon may retrain on a batch before judging its drift)."""
    skipped: list[str] = []
    for reference in references:
        rows = read(reference)
        if partition is not None and partition in set(rows["_partition"].unique()):
            skipped.append(f"v{reference.model_version}")
            continue
        return Baseline(reference.model_version, reference.data_version, reference.is_champion, rows, tuple(skipped))
    return Baseline(None, "", False, None, tuple(skipped))


def severity(share: float, policy: Monitoring) -> str:
    """The severity a drifted share maps to: error from `drift_error_share`, warn from `drift_warn_share`."""
    if share >= policy.drift_error_share:
        return "error"
    if share >= policy.drift_warn_share:
        return "warn"
    return "none"


def monitored_columns(spec: Spec) -> tuple[list[str], list[str]]:
    """The numeric and categorical features watched for drift: the contract features a request carries."""
    return [c.name for c in spec.numeric], list(spec.categorical_feature_names)


def prediction_column(spec: Spec) -> tuple[str, bool]:
    """The column of a day's predictions (`serving.predlog.day_frame`) whose drift is judged, and whether it is
    numeric: binary the positive class's probability, multiclass the predicted class, regression the value."""
    return {"binary": ("probability", True), "multiclass": ("label", False), "regression": ("value", True)}[spec.task]


def reference_predictions(model: Any, rows: pd.DataFrame, spec: Spec, threshold: float, seed: int = 0) -> pd.Series:
    """The reference model's outputs on (a seeded sample of at most `PREDICTION_REFERENCE_ROWS` of) its training
    rows, as the prediction log holds them (`prediction_column`)."""
    from mlplatform.lib import predictions

    if len(rows) > PREDICTION_REFERENCE_ROWS:
        rows = rows.sample(n=PREDICTION_REFERENCE_ROWS, random_state=seed)
    out = predictions.output(model, rows[list(spec.feature_names)], spec)
    name, _ = prediction_column(spec)
    values = predictions.labels(out, spec, threshold) if spec.task == "multiclass" else out
    return pd.Series(values, name=name)


def prediction_drift(reference: pd.Series, current: pd.Series, spec: Spec) -> ColumnDrift | None:
    """The drift of the served predictions against the reference model's (the same tests as features: p-values
    up to `LARGE_SAMPLE` rows, distances above); None when either side has fewer rows than the policy's minimum."""
    name, numeric = prediction_column(spec)
    reference, current = reference.dropna(), current.dropna()
    if min(len(reference), len(current)) < spec.monitoring.min_drift_rows:
        return None
    column = f"prediction_{name}"
    frames = [s.astype("float64" if numeric else str).rename(column).to_frame() for s in (reference, current)]
    methods = ("wasserstein", "jensenshannon") if len(current) > LARGE_SAMPLE else ("ks", "chisquare")
    snapshot = _run(frames[0], frames[1], [column] if numeric else [], [] if numeric else [column], methods)
    return _column_tests(snapshot.dict())[column]


def detect(reference: pd.DataFrame, current: pd.DataFrame, spec: Spec, report: Path | None = None,
           predictions: tuple[pd.Series, pd.Series] | None = None) -> DriftResult:
    """Test every monitored feature of `current` against `reference`; write the HTML report to `report`.
    `predictions`: (the reference model's outputs, the served ones) for live traffic: drifted predictions make the
    severity at least `warn`."""
    numeric, categorical = monitored_columns(spec)
    columns = numeric + categorical
    for name, frame in (("reference", reference), ("current", current)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"drift: the {name} rows lack the monitored columns {absent}")
    policy = spec.monitoring
    if len(current) < policy.min_drift_rows or len(reference) < policy.min_drift_rows:
        return DriftResult((), len(current), len(reference), judged=False, severity="none")
    large = len(current) > LARGE_SAMPLE
    methods = ("wasserstein", "jensenshannon") if large else ("ks", "chisquare")
    snapshot = _run(reference[columns], current[columns], numeric, categorical, methods)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        tmp = report.with_name(f".{report.name}.tmp")
        snapshot.save_html(str(tmp))
        tmp.replace(report)
    tests = _column_tests(snapshot.dict())
    outputs = prediction_drift(*predictions, spec) if predictions is not None else None
    result = DriftResult(tuple(tests[c] for c in columns), len(current), len(reference), judged=True, severity="",
                         prediction=outputs)
    level = severity(result.share, policy)
    return replace(result, severity="warn" if level == "none" and outputs is not None and outputs.drifted else level)


def _run(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
         methods: tuple[str, str]) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(columns=numeric + categorical, num_method=methods[0], cat_method=methods[1])
    report = Report([preset], include_tests=True)
    return report.run(Dataset.from_pandas(current.reset_index(drop=True), data_definition=definition),
                      Dataset.from_pandas(reference.reset_index(drop=True), data_definition=definition))


def _column_tests(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column drift from Evidently's snapshot: each ValueDrift metric and the verdict of its test."""
    scores = {m["id"]: m for m in snapshot["metrics"] if m["config"]["type"].endswith(":ValueDrift")}
    out = {}
    for test in snapshot["tests"]:
        metric = scores.get(test["metric_config"]["metric_id"])
        if metric is None:
            continue
        config = metric["config"]
        out[config["column"]] = ColumnDrift(config["column"], config["method"], float(metric["value"]),
                                            float(config["threshold"]), drifted=test["status"] == "FAIL")
    return out
