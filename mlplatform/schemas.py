"""pandera schemas for every DataFrame that crosses an asset boundary, built from a spec.

Schemas are `DataFrameSchema` objects rather than hand-written `DataFrameModel` classes because their columns
come from the spec: a second dataset is a second spec, not a second schema file.
"""

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlplatform.specs import Categorical, Numeric, Spec

TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")


def _numeric_column(col: Numeric) -> pa.Column:
    checks = [pa.Check(np.isfinite, name="finite", error="not finite")]
    if col.min is not None:
        checks.append(pa.Check.ge(col.min))
    if col.max is not None:
        checks.append(pa.Check.le(col.max))
    dtype = ("Int64" if col.nullable else "int64") if col.integer else "float64"
    if col.nullable:  # nulls are allowed, infinities still are not
        checks[0] = pa.Check(lambda s: ~np.isinf(s.astype("float64")), name="finite", error="not finite")
    return pa.Column(dtype, checks=checks, nullable=col.nullable, coerce=True)


# Arrow-backed strings: pandera checks their dtype once per column instead of once per element.
STRING_DTYPE = pd.StringDtype("pyarrow")


def _categorical_column(col: Categorical) -> pa.Column:
    return pa.Column(STRING_DTYPE, checks=pa.Check.isin(col.categories), nullable=col.nullable, coerce=True)


def contract_schema(spec: Spec) -> pa.DataFrameSchema:
    """The dataset contract of landed files: dtypes, ranges, categories, non-null keys, unique (entity, time)."""
    columns = {
        spec.entity: pa.Column("int64", pa.Check.ge(0), nullable=False, coerce=True),
        spec.timestamp: pa.Column(TIMESTAMP_DTYPE, nullable=False, coerce=True),
    }
    columns |= {c.name: _numeric_column(c) for c in spec.numeric}
    columns |= {c.name: _categorical_column(c) for c in spec.categorical}
    if spec.sensitive is not None:
        columns[spec.sensitive.name] = _categorical_column(spec.sensitive)
    columns[spec.label] = pa.Column("int64", pa.Check.isin([0, 1]), nullable=False, coerce=True)
    return pa.DataFrameSchema(
        columns,
        strict=True,
        unique=[spec.entity, spec.timestamp],
        report_duplicates="all",
        name=f"{spec.name}_contract",
        description=f"Landed files of {spec.name}",
    )


def training_set_schema(spec: Spec) -> pa.DataFrameSchema:
    """Training rows: every feature present (a null means the point-in-time join found nothing)."""
    columns = {
        spec.entity: pa.Column("int64", nullable=False),
        spec.timestamp: pa.Column(TIMESTAMP_DTYPE, nullable=False),
        "_partition": pa.Column(str, nullable=False),
    }
    if spec.sensitive is not None:
        columns[spec.sensitive.name] = _categorical_column(spec.sensitive)
    for col in spec.numeric:
        checks = [pa.Check.ge(col.min)] if col.min is not None else []
        checks += [pa.Check.le(col.max)] if col.max is not None else []
        columns[col.name] = pa.Column("float64", checks=checks, nullable=col.nullable)
    columns |= {c.name: _categorical_column(c) for c in spec.categorical}
    columns |= {d.name: pa.Column("float64", pa.Check(np.isfinite, name="finite", error="not finite"), nullable=False)
                for d in spec.derived}
    columns[spec.label] = pa.Column("int64", pa.Check.isin([0, 1]), nullable=False)
    return pa.DataFrameSchema(columns, strict=True, unique=[spec.entity, spec.timestamp],
                              name=f"{spec.name}_training_set")
