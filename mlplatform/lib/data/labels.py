"""Label rows: what a training set is built for, taken from a partition's valid rows."""

import pandas as pd

from mlplatform.specs import Spec


def label_rows(validated: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """What the model learns to predict, keyed by entity and time (plus the fairness slice, never a feature)."""
    cols = [spec.entity, spec.timestamp, spec.label]
    if spec.sensitive is not None:
        cols.append(spec.sensitive.name)
    return validated[cols].reset_index(drop=True)
