"""Live performance: served rows joined to the labels that arrive for them later, scored per model version.

A served row names its entity (requests to `predict_entity` do). Its label is that entity's latest label row at
or before the moment it was served, no older than `Monitoring.label_window_days`: the application the served
features came from. Rows whose label has not landed yet stay unlabelled until a later file brings it.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlplatform.lib.evaluation.gates import bound_failures
from mlplatform.lib.evaluation.metrics import expected_calibration_error
from mlplatform.specs import Spec

# The live metrics per task (the binary ones need only the positive class's probability the log keeps).
TASK_HEADLINE = {"binary": ("roc_auc", "brier", "expected_calibration_error"), "multiclass": ("accuracy",),
                 "regression": ("rmse", "mae")}
HEADLINE = tuple(dict.fromkeys(m for names in TASK_HEADLINE.values() for m in names))


def labelled(served: pd.DataFrame, labels: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """The served rows that have a label, with it as `outcome` (and the label's time as `labelled_at`)."""
    rows = served.dropna(subset=[spec.entity])
    if rows.empty or labels.empty:
        empty = {"outcome": pd.Series(dtype="int64"), "labelled_at": pd.Series(dtype="datetime64[ns, UTC]")}
        return rows.iloc[:0].assign(**empty)
    rows = rows.astype({spec.entity: labels[spec.entity].dtype}).sort_values("at", kind="stable")
    events = (labels[[spec.entity, spec.timestamp, spec.label]]
              .rename(columns={spec.label: "outcome", spec.timestamp: "labelled_at"}))
    events["labelled_at"] = pd.to_datetime(events["labelled_at"], utc=True).astype("datetime64[ns, UTC]")
    rows = rows.astype({"at": "datetime64[ns, UTC]"})  # one resolution on both sides of the as-of join
    events = events.sort_values("labelled_at", kind="stable")
    joined = pd.merge_asof(rows, events, left_on="at", right_on="labelled_at", by=spec.entity, direction="backward",
                           tolerance=pd.Timedelta(days=spec.monitoring.label_window_days))
    joined = joined.dropna(subset=["outcome"])
    return (joined.astype({"outcome": "int64"}) if spec.task == "binary" and not spec.label_is_text
            else joined).reset_index(drop=True)


def _live_metrics(rows: pd.DataFrame, spec: Spec | None) -> dict[str, float]:
    task = spec.task if spec is not None else "binary"
    nan = float("nan")
    out = dict.fromkeys(HEADLINE, nan)
    if not len(rows):
        return out
    if task == "binary":
        positive = spec.positive_class if spec is not None else 1
        y, scores = (rows["outcome"] == positive).to_numpy(dtype="int64"), rows["probability"].to_numpy(dtype=float)
        both = len(np.unique(y)) == 2
        out |= {"roc_auc": float(skm.roc_auc_score(y, scores)) if both else nan,
                "brier": float(skm.brier_score_loss(y, scores, pos_label=1)),
                "expected_calibration_error": expected_calibration_error(y, scores)}
    elif task == "multiclass":
        out["accuracy"] = float((rows["label"].astype(str) == rows["outcome"].astype(str)).mean())
    else:
        error = rows["value"].to_numpy(dtype=float) - rows["outcome"].to_numpy(dtype=float)
        out |= {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
    return out


def by_version(served: pd.DataFrame, joined: pd.DataFrame, spec: Spec | None = None) -> pd.DataFrame:
    """Per environment and model version: rows served and labelled, and the task's live metrics on the labelled."""
    out = []
    positive = spec.positive_class if spec is not None else 1
    for (env, version), group in served.groupby(["env", "model_version"], sort=True):
        rows = joined[(joined["env"] == env) & (joined["model_version"] == version)]
        binary = spec is None or spec.task == "binary"
        out.append({"env": env, "model_version": str(version), "served_rows": len(group),
                    "labelled_rows": len(rows),
                    "positive_rate": float((rows["outcome"] == positive).mean()) if len(rows) and binary else np.nan,
                    "mean_probability": float(rows["probability"].astype(float).mean())
                    if len(rows) and binary else np.nan, **_live_metrics(rows, spec)})
    columns = ["env", "model_version", "served_rows", "labelled_rows", "positive_rate", "mean_probability", *HEADLINE]
    return pd.DataFrame(out, columns=columns)


@dataclass(frozen=True)
class Verdict:
    """Whether one version's live metrics clear the spec's gate floors and ceilings."""

    version: str
    labelled_rows: int
    judged: bool
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if not self.judged:
            return f"v{self.version}: {self.labelled_rows} labelled rows, fewer than the minimum to judge"
        if self.failures:
            return f"v{self.version} below its floor on {self.labelled_rows} labelled rows: {', '.join(self.failures)}"
        return f"v{self.version} clears its floors on {self.labelled_rows} labelled rows"


def judge(row: pd.Series, spec: Spec) -> Verdict:
    """One version's metrics (a row of `by_version`) against the gate floors and ceilings it was promoted on."""
    labelled_rows = int(row["labelled_rows"])
    if labelled_rows < spec.monitoring.min_label_rows:
        return Verdict(str(row["model_version"]), labelled_rows, False, ())
    known = {name: float(row[name]) for name in HEADLINE if not np.isnan(row[name])}  # ROC AUC needs both classes
    thresholds = spec.gate_thresholds
    failures = bound_failures(known, {k: v for k, v in thresholds["floors"].items() if k in known},
                              {k: v for k, v in thresholds["ceilings"].items() if k in known})
    return Verdict(str(row["model_version"]), labelled_rows, True, tuple(failures))


def headline(table: pd.DataFrame, env: str = "production") -> pd.Series | None:
    """The version that answered most of an environment's rows (the primary), or None without traffic."""
    rows = table[table["env"] == env]
    return None if rows.empty else rows.sort_values("served_rows", ascending=False, kind="stable").iloc[0]
