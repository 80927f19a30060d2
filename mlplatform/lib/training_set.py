"""Point-in-time correct training data: labels joined to Feast features as of each label's timestamp."""

from typing import Any

import pandas as pd

from mlplatform.specs import Spec


def label_rows(validated: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """What the model learns to predict, keyed by entity and time (plus the fairness slice, never a feature)."""
    cols = [spec.entity, spec.timestamp, spec.label]
    if spec.sensitive is not None:
        cols.append(spec.sensitive.name)
    return validated[cols].reset_index(drop=True)


def training_set(labels: dict[str, pd.DataFrame], spec: Spec, store: Any) -> pd.DataFrame:
    """Historical features for every label row through the spec's versioned feature service."""
    frames = [labels[k].assign(_partition=k) for k in sorted(labels)]
    entity_df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[spec.entity, spec.timestamp])
    entity_df = entity_df.rename(columns={spec.timestamp: "event_timestamp"})
    service = store.get_feature_service(spec.feature_service_name)
    joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    joined = joined.rename(columns={"event_timestamp": spec.timestamp})
    joined[spec.timestamp] = joined[spec.timestamp].astype("datetime64[ns, UTC]")
    extra = [c for c in entity_df.columns if c not in (spec.entity, "event_timestamp", spec.label)]
    order = [spec.entity, spec.timestamp, *extra, *spec.feature_names, spec.label]
    return joined[order].sort_values([spec.timestamp, spec.entity], ignore_index=True)
