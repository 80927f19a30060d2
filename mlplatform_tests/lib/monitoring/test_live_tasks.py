"""Live performance of multiclass and regression models: served answers joined to the labels that land later, scored
with the task's live metrics and judged against the task's floors."""

import dataclasses

import pandas as pd

from mlplatform.lib.monitoring import live
from mlplatform.specs import Gates
from mlplatform_tests.datasets import diabetes, wine


def served(values: dict) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    at = pd.Timestamp("2026-03-02T12:00:00Z")
    return pd.DataFrame({"env": ["production"] * n, "model_version": ["3"] * n, "row_id": range(n),
                         "at": [at] * n, **values})


def labels(column: str, outcomes: list) -> pd.DataFrame:
    return pd.DataFrame({"row_id": range(len(outcomes)), "event_timestamp": pd.Timestamp("2026-03-02T08:00:00Z"),
                         column: outcomes})


def test_multiclass_is_scored_by_accuracy_of_the_answered_labels():
    spec = dataclasses.replace(wine().spec, gates=Gates(floors=(("accuracy", 0.8),)))
    answers = served({"label": ["class_0", "class_1", "class_2", "class_0"], "probability": [0.9, 0.8, 0.7, 0.6],
                      "value": [None] * 4})
    joined = live.labelled(answers, labels("cultivar", ["class_0", "class_1", "class_1", "class_0"]), spec)
    table = live.by_version(answers, joined, spec)
    assert table.loc[0, "accuracy"] == 0.75 and table.loc[0, "labelled_rows"] == 4
    verdict = live.judge(table.iloc[0], dataclasses.replace(
        spec, monitoring=dataclasses.replace(spec.monitoring, min_label_rows=4)))
    assert verdict.judged and verdict.failures == ("accuracy 0.7500 < floor 0.8000",)


def test_regression_is_scored_by_rmse_and_mae_of_the_answered_values():
    spec = diabetes().spec
    answers = served({"label": [None] * 3, "probability": [None] * 3, "value": [100.0, 150.0, 200.0]})
    joined = live.labelled(answers, labels("progression", [110.0, 150.0, 170.0]), spec)
    row = live.by_version(answers, joined, spec).iloc[0]
    assert row["mae"] == (10 + 0 + 30) / 3 and round(row["rmse"], 6) == round(((100 + 900) / 3) ** 0.5, 6)
