"""pandera schemas for every DataFrame that crosses an asset boundary, built from a spec.

Schemas are `DataFrameSchema` objects rather than hand-written `DataFrameModel` classes because their columns
come from the spec: a second dataset is a second spec, not a second schema file.
"""

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlplatform.specs import MISSING_CATEGORY, Categorical, Numeric, Spec

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


def label_column(spec: Spec, coerce: bool) -> pa.Column:
    """The label: one of the declared classes (integers or strings), or a finite number in the target's range."""
    if spec.is_classification:
        dtype = STRING_DTYPE if spec.label_is_text else "int64"
        return pa.Column(dtype, pa.Check.isin(list(spec.classes)), nullable=False, coerce=coerce)
    checks = [pa.Check(np.isfinite, name="finite", error="not finite")]
    checks += [pa.Check.ge(spec.target_min)] if spec.target_min is not None else []
    checks += [pa.Check.le(spec.target_max)] if spec.target_max is not None else []
    return pa.Column("float64", checks=checks, nullable=False, coerce=coerce)


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
    columns[spec.label] = label_column(spec, coerce=True)
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
    # a missing category is its own category from featurization on (`MISSING_CATEGORY`)
    for c in spec.categorical:
        allowed = [*c.categories, *([MISSING_CATEGORY] if c.nullable else [])]
        columns[c.name] = pa.Column(STRING_DTYPE, pa.Check.isin(allowed), nullable=False, coerce=True)
    columns |= {d.name: pa.Column("float64", pa.Check(lambda s: ~np.isinf(s), name="finite", error="not finite"),
                                  nullable=spec.derived_nullable(d)) for d in spec.derived}
    columns |= {name: pa.Column("float64", pa.Check(lambda s: ~np.isinf(s), name="finite", error="not finite"),
                                nullable=True) for name in spec.function_features}  # imputed like nullable inputs
    columns[spec.label] = label_column(spec, coerce=False)
    return pa.DataFrameSchema(columns, strict=True, unique=[spec.entity, spec.timestamp],
                              name=f"{spec.name}_training_set")
