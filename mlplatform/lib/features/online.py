"""Moving a partition's features into the Feast online store and checking online/offline parity."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from mlplatform.lib.features import feast_repo
from mlplatform.specs import Spec

WRITE_CHUNK_ROWS = 50_000


def write_offline(features: pd.DataFrame, folder: Path, partition_key: str) -> Path:
    """Write one partition of the offline source atomically (readers never see half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{partition_key}.parquet"
    tmp = folder / f".{partition_key}.parquet.tmp"
    features.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def latest_rows(features: pd.DataFrame, spec: Spec, folder: Path, partition_key: str) -> pd.DataFrame:
    """The partition's newest row per entity, minus entities that another partition holds newer values for.

    Partitions can be ingested out of order; an older partition must not overwrite newer online values.
    """
    latest = features.sort_values(spec.timestamp).drop_duplicates(spec.entity, keep="last")
    others = [p for p in folder.glob("*.parquet") if p.stem != partition_key]
    if not others:
        return latest
    seen = ds.dataset([str(p) for p in others], format="parquet").to_table(columns=[spec.entity, spec.timestamp])
    newest = seen.to_pandas().groupby(spec.entity)[spec.timestamp].max()
    elsewhere = latest[spec.entity].map(newest)
    return latest[~(elsewhere > latest[spec.timestamp]).fillna(False).to_numpy()]


def write_online(store: Any, spec: Spec, rows: pd.DataFrame) -> int:
    """Push rows into the online store in bounded chunks (Feast's writer holds every proto in memory)."""
    view = feast_repo.feature_view_name(spec)
    for start in range(0, len(rows), WRITE_CHUNK_ROWS):
        store.write_to_online_store(view, rows.iloc[start : start + WRITE_CHUNK_ROWS])
    return len(rows)


def parity_mismatches(store: Any, spec: Spec, entity_ids: list[int], as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Compare online values with the offline point-in-time values as of `as_of` (default now); one row per cell."""
    if not entity_ids:
        return pd.DataFrame(columns=[spec.entity, "feature", "online", "offline"])
    service = store.get_feature_service(spec.feature_service_name)
    online = store.get_online_features(features=service, entity_rows=[{spec.entity: int(i)} for i in entity_ids])
    online = online.to_df().set_index(spec.entity)
    as_of = pd.Timestamp.now(tz="UTC") if as_of is None else as_of
    entity_df = pd.DataFrame({spec.entity: entity_ids, "event_timestamp": as_of})
    offline = store.get_historical_features(entity_df=entity_df, features=service).to_df().set_index(spec.entity)
    rows = []
    for name in spec.feature_names:
        on = online[name].reindex(entity_ids)
        off = offline[name].reindex(entity_ids)
        same = (on == off) | (on.isna() & off.isna())
        for entity in np.asarray(entity_ids)[~same.to_numpy()]:
            rows.append({spec.entity: int(entity), "feature": name, "online": on[entity], "offline": off[entity]})
    return pd.DataFrame(rows, columns=[spec.entity, "feature", "online", "offline"])
