"""Split a landed frame into rows that meet the contract and quarantined rows, with the reason per row."""

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from mlplatform.specs import Spec

FAILURES_COLUMN = "_failed_checks"
SAMPLE_SIZE = 20


@dataclass
class ValidationResult:
    """The outcome of validating one partition: valid rows, quarantined rows and what failed where."""

    rows_in: int
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    failure_cases: pd.DataFrame
    file_errors: list[str] = field(default_factory=list)
    landed: pd.DataFrame | None = None  # the rows as landed (what a rejected file's quarantine keeps)

    @property
    def bad_share(self) -> float:
        return len(self.quarantined) / self.rows_in if self.rows_in else 1.0

    def failure_counts(self) -> pd.DataFrame:
        """Failing rows per (column, check), largest first."""
        if self.failure_cases.empty:
            return pd.DataFrame(columns=["column", "check", "rows"])
        counts = self.failure_cases.groupby(["column", "check"], dropna=False).size().rename("rows").reset_index()
        return counts.sort_values("rows", ascending=False, ignore_index=True)

    def sample(self, n: int = SAMPLE_SIZE) -> pd.DataFrame:
        """A few failure cases, at most a handful per (column, check) so rare failures show too."""
        cases = self.failure_cases.astype({"failure_case": str})
        return cases.groupby(["column", "check"], dropna=False).head(max(1, n // 4)).head(n)

    def rejected(self, reason: str) -> "ValidationResult":
        """The whole file refused: every row quarantined as landed, the valid ones with `reason` (rows in = valid +
        quarantined still holds, and nothing of the file is kept only in the orchestrator's storage)."""
        if self.landed is None or len(self.quarantined) == self.rows_in:
            return self
        rest = self.landed.drop(index=self.quarantined.index).assign(**{FAILURES_COLUMN: reason})
        everything = pd.concat([self.quarantined, rest]).sort_index()
        return ValidationResult(self.rows_in, self.valid.iloc[0:0], everything, self.failure_cases, self.file_errors,
                                self.landed)

    def summary(self) -> str:
        """One human sentence naming what failed."""
        if self.file_errors:
            return "; ".join(self.file_errors)
        if self.quarantined.empty:
            return f"all {self.rows_in} rows valid"
        parts = [f"{r.column}: {r.check} ({r.rows} rows)" for r in self.failure_counts().itertuples()]
        return f"{len(self.quarantined)} of {self.rows_in} rows quarantined: " + "; ".join(parts)


def _file_errors(cases: pd.DataFrame) -> list[str]:
    """Failures with no row index are about the file's shape (missing or unexpected columns)."""
    messages = []
    for check, label in (("column_in_dataframe", "missing column"), ("column_in_schema", "unexpected column")):
        names = cases.loc[cases["check"] == check, "failure_case"].astype(str).tolist()
        if names:
            messages.append(f"{label}{'s' if len(names) > 1 else ''} {', '.join(map(repr, sorted(names)))}")
    if len(messages) == 2 and len(cases[cases["check"] == "column_in_dataframe"]) > 2:
        messages.append("most contract columns are absent: check the header row and the delimiter")
    other = cases[~cases["check"].isin(["column_in_dataframe", "column_in_schema"])]
    for row in other.itertuples():
        messages.append(f"column {row.column!r}: {row.check} failed for the whole column ({row.failure_case})")
    return messages


def _coerce_numeric(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn text in numeric columns into NaN, vectorized, and report each cell that was not a number."""
    cases, copied = [], False
    for name in columns:
        if name not in frame or pd.api.types.is_numeric_dtype(frame[name]):
            continue
        if not copied:
            frame, copied = frame.copy(), True
        converted = pd.to_numeric(frame[name], errors="coerce")
        failed = converted.isna() & frame[name].notna()
        cases.append(pd.DataFrame({"column": name, "check": "not a number", "index": frame.index[failed],
                                   "failure_case": frame.loc[failed, name].astype(str).to_numpy()}))
        frame[name] = converted
    return frame, (pd.concat(cases, ignore_index=True) if cases else _no_cases())


def _no_cases() -> pd.DataFrame:
    return pd.DataFrame({"column": pd.Series(dtype=str), "check": pd.Series(dtype=str),
                         "index": pd.Series(dtype="Int64"), "failure_case": pd.Series(dtype=object)})


def validate_frame(frame: pd.DataFrame, schema: pa.DataFrameSchema, numeric: list[str]) -> ValidationResult:
    """Validate lazily; rows failing any check go to quarantine, annotated with every check they failed."""
    original = frame.reset_index(drop=True)
    frame, text_cases = _coerce_numeric(original, numeric)
    try:
        valid = schema.validate(frame, lazy=True)
        cases, data = text_cases, valid
    except pa.errors.SchemaErrors as err:
        cases, data = pd.concat([text_cases, err.failure_cases[text_cases.columns]], ignore_index=True), err.data
    if cases.empty:
        return ValidationResult(len(original), valid, _quarantine(original.iloc[0:0], pd.Series(dtype=str)), cases,
                                landed=original)
    file_errors = _file_errors(cases[cases["index"].isna()])
    if file_errors:
        reasons = pd.Series("; ".join(file_errors), index=original.index)
        return ValidationResult(len(original), original.iloc[0:0], _quarantine(original, reasons), cases, file_errors,
                                original)
    recoerce = _coercion_failed(cases)
    cases = _merge_key_duplicates(_drop_followups(cases.astype({"index": "int64"})), schema)
    reasons = _reasons(cases)
    good = data.drop(index=reasons.index)
    if recoerce:
        # A column whose coercion hit a bad cell stays uncoerced; the remaining rows coerce cleanly.
        good = schema.validate(good, lazy=True)
    return ValidationResult(len(original), good, _quarantine(original.loc[reasons.index], reasons), cases,
                            landed=original)


_ROOT_CAUSES = {"not a number": 0, "not_nullable": 1, "not finite": 2}


def _drop_followups(cases: pd.DataFrame) -> pd.DataFrame:
    """A cell that is empty or not a number also fails dtype and range checks; keep only the root cause."""
    rank = cases["check"].map(_ROOT_CAUSES).fillna(len(_ROOT_CAUSES))
    best = rank.groupby([cases["column"], cases["index"]]).transform("min")
    keep = (rank == best) | (best == len(_ROOT_CAUSES))
    return cases[keep.to_numpy()].reset_index(drop=True)


def _reasons(cases: pd.DataFrame) -> pd.Series:
    """'column: check' per bad row, several joined by '; ' (vectorized for the common single-reason row)."""
    text = cases["column"].astype(str) + ": " + cases["check"].astype(str)
    pairs = pd.DataFrame({"index": cases["index"].to_numpy(), "reason": text.to_numpy()})
    pairs = pairs.drop_duplicates().sort_values(["index", "reason"])
    single = ~pairs["index"].duplicated(keep=False)
    one = pairs[single.to_numpy()].set_index("index")["reason"]
    several = pairs[~single.to_numpy()].groupby("index")["reason"].agg("; ".join)
    return pd.concat([one, several]).sort_index()


def _merge_key_duplicates(cases: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """pandera reports a duplicated key once per key column; report it once per row, naming the whole key."""
    dup = cases["check"] == "multiple_fields_uniqueness"
    if not dup.any():
        return cases
    names = "(" + ", ".join(schema.unique) + ")"
    merged = cases[dup].drop_duplicates("index").assign(column=names, check="duplicate key")
    return pd.concat([cases[~dup], merged], ignore_index=True)


def _quarantine(rows: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    out = rows.copy()
    out[FAILURES_COLUMN] = reasons.reindex(out.index).astype(str).to_numpy() if len(out) else pd.Series(dtype=str)
    return out


def validate_landed(frame: pd.DataFrame, spec: Spec) -> ValidationResult:
    """Validate one landed file's frame against the spec's contract."""
    from mlplatform.schemas import contract_schema

    numeric = [spec.entity, *([] if spec.label_is_text else [spec.label]), *(c.name for c in spec.numeric)]
    return validate_frame(frame, contract_schema(spec), numeric)


def _coercion_failed(cases: pd.DataFrame) -> bool:
    """True when pandera could not coerce some cell (its column is then left uncoerced in the output)."""
    return bool(cases["check"].astype(str).str.startswith("coerce_dtype").any())
