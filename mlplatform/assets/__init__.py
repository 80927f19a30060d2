"""Software-defined assets, one module per layer; each module builds its assets from a spec."""

from typing import Any, TypeAlias

import dagster as dg

from mlplatform.specs import Spec

# pandas.DataFrame, named loosely so the code location loads without importing pandas (~1.5 s here).
DataFrame: TypeAlias = Any


def key(spec: Spec, name: str) -> dg.AssetKey:
    """Asset keys are prefixed by the spec name, so two specs never collide."""
    return dg.AssetKey([spec.name, name])


def table_schema(frame: DataFrame) -> dg.TableSchema:
    """Column names and dtypes of a frame, for the UI's column view."""
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])


def table(frame: DataFrame, limit: int = 20) -> dg.TableMetadataValue:
    """The first rows of a small frame as a UI table (values as text)."""
    head = frame.head(limit).astype(str)
    columns = [dg.TableColumn(str(c), "string") for c in head.columns]
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in head.to_dict("records")],
                                  schema=dg.TableSchema(columns=columns))


def eager_downstream() -> dg.AutomationCondition:
    """Eager, but not held back forever by a partition that failed its checks (it stays missing)."""
    return dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
