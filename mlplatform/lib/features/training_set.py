"""Point-in-time correct training data: labels joined to Feast features as of each label's timestamp."""

from typing import Any

import numpy as np
import pandas as pd

from mlplatform.lib.memory import release_freed_memory
from mlplatform.specs import Spec


def without_repeats(labels: dict[str, pd.DataFrame], spec: Spec) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Each (entity, timestamp) once: a pair a partition repeats from an earlier one (in partition order) is left out
    of the later one, so a repeated file cannot block every later training. Returns the labels and, per partition
    that lost rows, a sentence naming the earlier partition."""
    seen: dict[tuple, str] = {}
    kept, repeated = {}, {}
    for partition in sorted(labels):
        frame = labels[partition]
        pairs = list(zip(frame[spec.entity].tolist(), pd.to_datetime(frame[spec.timestamp], utc=True).tolist(),
                         strict=True))
        earlier = [seen.get(pair) for pair in pairs]
        keep = [e is None for e in earlier]
        if not all(keep):
            first = sorted({e for e in earlier if e is not None})
            repeated[partition] = (f"{keep.count(False)} rows repeat ({spec.entity}, {spec.timestamp}) pairs of "
                                   f"earlier partition{'s' if len(first) > 1 else ''} {', '.join(first)}: left out")
        for pair, new in zip(pairs, keep, strict=True):
            if new:
                seen[pair] = partition
        kept[partition] = frame[keep].reset_index(drop=True) if not all(keep) else frame
    return kept, repeated


def schema_failures(failures: pd.DataFrame, frame: pd.DataFrame) -> str:
    """One sentence naming each failed check with its column, row count and the partitions of those rows."""
    parts = []
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=True):
        rows = pd.to_numeric(group["index"], errors="coerce").dropna().astype(int)
        partitions = sorted(frame["_partition"].iloc[rows[rows < len(frame)]].unique().tolist()) if len(rows) else []
        where = f" in partitions {', '.join(partitions)}" if partitions else ""
        parts.append(f"{column}: {check} ({len(group)} values{where})")
    return f"{len(failures)} failing values: " + "; ".join(parts)


CHUNK_ROWS = 1_000_000  # Feast's join materialises every (label, earlier feature row) pair: bound it
STRINGS = pd.StringDtype("pyarrow")  # what the training set schema coerces categories to anyway


def _features_by_row(keys: pd.DataFrame, spec: Spec, store: Any, chunk_rows: int) -> Any:
    """Feast's historical features of `keys` (entity, event_timestamp, _row) in bounded chunks, as pyarrow."""
    import pyarrow as pa

    service = store.get_feature_service(spec.feature_service_name)
    parts = [store.get_historical_features(entity_df=keys.iloc[s : s + chunk_rows].copy(), features=service)
             .to_arrow().select(["_row", *spec.feature_names]) for s in range(0, max(len(keys), 1), chunk_rows)]
    table = pa.concat_tables(parts)
    if table.num_rows != len(keys):
        raise ValueError(f"{spec.name}: Feast returned {table.num_rows} rows for {len(keys)} label rows")
    return table


def training_set(labels: dict[str, pd.DataFrame], spec: Spec, store: Any, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Historical features for every label row through the spec's versioned feature service, sorted by time."""
    import pyarrow as pa

    frames = [labels[k].assign(_partition=k) for k in sorted(labels)]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[spec.entity, spec.timestamp])
    # Only the keys go through Feast: label and slice columns would be carried through its join for nothing.
    keys = pd.DataFrame({spec.entity: rows[spec.entity].to_numpy(), "event_timestamp": rows[spec.timestamp].array,
                         "_row": np.arange(len(rows))})
    table = _features_by_row(keys, spec, store, chunk_rows)
    order = np.lexsort((rows[spec.entity].to_numpy(), rows[spec.timestamp].to_numpy(dtype="datetime64[ns]")))
    position = np.empty(len(rows), dtype=np.int64)
    position[table.column("_row").to_numpy()] = np.arange(len(rows))
    out = table.select(spec.feature_names).take(position[order]).to_pandas(
        types_mapper={pa.string(): STRINGS, pa.large_string(): STRINGS}.get, self_destruct=True)
    del table
    head = rows.take(order).reset_index(drop=True)
    extra = [c for c in rows.columns if c not in (spec.entity, spec.timestamp, spec.label)]
    for i, name in enumerate([spec.entity, spec.timestamp, *extra]):
        out.insert(i, name, head[name])
    out[spec.label] = head[spec.label]
    release_freed_memory()
    return out
