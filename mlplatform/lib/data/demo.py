"""The demo dataset: credit-default applications with real signal, one landed file per day."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DEMO_START = date(2026, 1, 1)

CORRUPTIONS: dict[str, str] = {
    "wrong-dtype": "text in the numeric column 'income' on 10% of rows",
    "missing-column": "the required column 'income' is absent",
    "extra-column": "an unexpected column 'notes'",
    "nan": "NaN in 'credit_utilization' on 10% of rows",
    "inf": "inf in 'loan_amount' on 10% of rows",
    "out-of-range": "'age' of 150 on 10% of rows",
    "unknown-category": "'home_ownership' of 'castle' on 10% of rows",
    "duplicate-keys": "10% of rows repeat another row's (customer_id, event_timestamp)",
    "null-entity": "empty 'customer_id' on 10% of rows",
    "empty": "a zero-byte file",
    "truncated-parquet": "a Parquet file cut off halfway",
    "truncated-csv": "a CSV file cut off halfway, in the middle of a line",
    "bad-header": "a CSV whose header row is garbled",
    "not-data": "binary content that is not a table at all",
    "wide-header": "a CSV whose header names a million columns",
    "truncated-gzip": "a gzipped CSV cut off halfway",
}
_HOME = np.array(["rent", "own", "mortgage", "other"])
_PURPOSE = np.array(["debt_consolidation", "car", "home_improvement", "education", "medical", "other"])


def age_band(age: pd.Series) -> pd.Series:
    """The fairness slice of an age in years."""
    bands = pd.cut(age, bins=[0, 25, 40, 60, 200], labels=["18-25", "26-40", "41-60", "60+"], right=True)
    return bands.astype(str)


def credit_day(day: int, rows: int, seed: int = 0, drifted: bool = False, start: date = DEMO_START) -> pd.DataFrame:
    """Applications landed on day `day` (0-based); deterministic for (seed, day)."""
    rng = np.random.default_rng([seed, day])
    n_customers = max(rows * 4, 1000)
    age = np.clip(rng.normal(42, 13, rows).round(), 18, 90).astype("int64")
    income = np.exp(rng.normal(10.8 - (0.25 if drifted else 0.0), 0.5, rows)).round(2)
    loan = np.clip(np.exp(rng.normal(9.3, 0.7, rows)), 500, 500_000).round(2)
    term = rng.choice([12, 24, 36, 48, 60], rows)
    util = (rng.beta(3, 4, rows) * 1.3 if drifted else rng.beta(2, 5, rows) * 1.2).round(4)
    late = rng.poisson(1.0 if drifted else 0.6, rows)
    employment = np.minimum(age - 18, rng.exponential(6, rows)).round(1)
    accounts = rng.poisson(4, rows)
    home = rng.choice(_HOME, rows, p=[0.4, 0.2, 0.35, 0.05])
    purpose = rng.choice(_PURPOSE, rows, p=[0.35, 0.2, 0.15, 0.1, 0.1, 0.1])
    coef_util, coef_late, base = (1.2, 0.9, -1.9) if drifted else (2.5, 0.45, -2.2)
    logit = (
        base
        + coef_util * (util - 0.35)
        + coef_late * late
        + 1.2 * (loan / income - 0.25)
        - 0.04 * employment
        + 0.3 * (home == "rent")
        + 0.4 * (purpose == "medical")
        - 0.01 * (age - 40)
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    day_start = datetime.combine(start + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 86_400, rows))
    frame = pd.DataFrame(
        {
            "customer_id": rng.choice(n_customers, rows, replace=False).astype("int64") + 1,
            "event_timestamp": pd.to_datetime(day_start) + pd.to_timedelta(seconds, unit="s"),
            "age": age,
            "income": income,
            "loan_amount": loan,
            "loan_term_months": term,
            "credit_utilization": util,
            "num_late_payments": late,
            "employment_years": employment,
            "num_open_accounts": accounts,
            "home_ownership": home,
            "purpose": purpose,
        }
    )
    frame["age_band"] = age_band(frame["age"])
    frame["default"] = label
    return frame


def corrupt(frame: pd.DataFrame, kind: str, share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A copy of `frame` with the row- or column-level defect `kind` (file-level kinds are in `write_corrupt`)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    rows = rng.choice(len(out), max(1, int(len(out) * share)), replace=False)
    if kind == "wrong-dtype":
        out["income"] = out["income"].astype(object)
        out.loc[rows, "income"] = "unknown"
    elif kind == "missing-column":
        out = out.drop(columns=["income"])
    elif kind == "extra-column":
        out["notes"] = "free text"
    elif kind == "nan":
        out.loc[rows, "credit_utilization"] = np.nan
    elif kind == "inf":
        out.loc[rows, "loan_amount"] = np.inf
    elif kind == "out-of-range":
        out.loc[rows, "age"] = 150
    elif kind == "unknown-category":
        out.loc[rows, "home_ownership"] = "castle"
    elif kind == "duplicate-keys":
        source = rng.choice(np.setdiff1d(np.arange(len(out)), rows), len(rows))
        out.loc[rows, ["customer_id", "event_timestamp"]] = out.loc[source, ["customer_id", "event_timestamp"]].values
    elif kind == "null-entity":
        out["customer_id"] = out["customer_id"].astype("Int64")
        out.loc[rows, "customer_id"] = pd.NA
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    return out


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV or Parquet by the path's suffix, atomically (landing zones are watched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    tmp.replace(path)
    return path


def _empty(frame: pd.DataFrame, stem: Path) -> Path:
    path = stem.with_suffix(".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _cut(path: Path) -> Path:
    """The file cut off halfway, never on a line end."""
    data = path.read_bytes()
    cut = len(data) // 2
    path.write_bytes(data[: cut if data[cut - 1:cut] != b"\n" else cut + 1])
    return path


def _bad_header(frame: pd.DataFrame, stem: Path) -> Path:
    path = write_frame(frame, stem.with_suffix(".csv"))
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace(",", ";").replace("_", " ")
    path.write_text("".join(lines))
    return path


def _not_data(frame: pd.DataFrame, stem: Path) -> Path:
    path = stem.with_suffix(".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(2048))
    return path


def _wide_header(frame: pd.DataFrame, stem: Path) -> Path:
    path = stem.with_suffix(".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n")
    return path


def _truncated_gzip(frame: pd.DataFrame, stem: Path) -> Path:
    import gzip

    plain = write_frame(frame, stem.with_suffix(".csv"))
    path = stem.with_name(f"{stem.name}.csv.gz")
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    return _cut(path)


FILE_DEFECTS: dict[str, Callable[[pd.DataFrame, Path], Path]] = {
    "empty": _empty,
    "truncated-parquet": lambda frame, stem: _cut(write_frame(frame, stem.with_suffix(".parquet"))),
    "truncated-csv": lambda frame, stem: _cut(write_frame(frame, stem.with_suffix(".csv"))),
    "bad-header": _bad_header,
    "not-data": _not_data,
    "wide-header": _wide_header,
    "truncated-gzip": _truncated_gzip,
}


def write_corrupt(frame: pd.DataFrame, kind: str, path_stem: Path, share: float = 0.1) -> Path:
    """Write one landed file with the defect `kind`; returns its path."""
    if kind in FILE_DEFECTS:
        return FILE_DEFECTS[kind](frame, path_stem)
    return write_frame(corrupt(frame, kind, share), path_stem.with_suffix(".csv"))


def write_demo_data(
    landing: Path,
    days: int,
    rows_per_day: int,
    seed: int = 0,
    drift_from: int | None = None,
    corrupt_kind: str | None = None,
    file_format: str = "csv",
    start: date = DEMO_START,
) -> list[Path]:
    """Write one file per day into `landing` (and one defective file after them when asked)."""
    if corrupt_kind is not None and corrupt_kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corrupt_kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    paths = []
    for day in range(days):
        drifted = drift_from is not None and day >= drift_from
        frame = credit_day(day, rows_per_day, seed, drifted, start)
        paths.append(write_frame(frame, landing / f"{start + timedelta(days=day)}.{file_format}"))
    if corrupt_kind is not None:
        frame = credit_day(days, rows_per_day, seed, drift_from is not None and days >= drift_from, start)
        stem = landing / f"{start + timedelta(days=days)}_corrupt-{corrupt_kind}"
        paths.append(write_corrupt(frame, corrupt_kind, stem))
    return paths
