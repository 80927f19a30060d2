"""Software-defined assets, one module per layer; each module builds its assets from a spec."""

import ast
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

import dagster as dg

from mlplatform.specs import Spec

# pandas.DataFrame, named loosely so the code location loads without importing pandas (~1.5 s here).
DataFrame: TypeAlias = Any


PROJECT = Path(__file__).resolve().parent.parent.parent  # holds mlplatform/ and bentos/


@dataclass(frozen=True)
class Sources:
    """Code versions from the code itself: an asset's version hashes the source it is computed by (files under
    `root`, or one function of a file as `path::function`) and the spec fields it reads. Editing that code or those
    fields marks that asset stale, and only it; nothing is bumped by hand. Read as text, never imported, so the
    code location loads without pandas or scikit-learn."""

    root: Path = PROJECT

    def version(self, *sources: str, config: object = ()) -> str:
        digest = hashlib.sha256(repr(config).encode())
        for source in sources:
            path, _, function = source.partition("::")
            file = self.root / path
            digest.update(f"{source}\n".encode() + _source(file, function, file.stat().st_mtime_ns).encode())
        return digest.hexdigest()[:12]


CHECKOUT = Sources()  # this checkout


@cache
def _source(path: Path, function: str, _modified: int) -> str:
    text = path.read_text()
    if not function:
        return text
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == function:
            return ast.get_source_segment(text, node) or ""
    raise ValueError(f"{path}: no function {function!r} to version")


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


def rebuild_on_change(partitioned: bool, lookback: timedelta | None = None,
                      may_be_missing: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Eager, with four changes: an upstream update counts only when its data version changed (re-running an
    unchanged input keeps this fresh), a new code version rebuilds it, a failed blocking check upstream holds it
    back, and for an unpartitioned asset over partitions a partition that never passed its gate (so stays missing)
    does not block it forever.

    A time-partitioned asset rebuilds its latest partition, or those within `lookback` of now; a partitioned
    asset waits for its inputs' partitions, except those of `may_be_missing`.
    """
    ac = dg.AutomationCondition
    updated = ac.newly_updated() & ac.data_version_changed() & ~ac.executed_with_root_target()
    trigger = ac.newly_missing() | ac.code_version_changed() | ac.any_deps_match(updated | ac.will_be_requested())
    window = ac.in_latest_time_window(lookback) if lookback else ac.in_latest_time_window()
    condition = (window & trigger.since_last_handled() & ~ac.any_deps_in_progress()
                 & ~ac.in_progress() & ac.all_deps_blocking_checks_passed())
    if not partitioned:
        return condition
    missing = ac.any_deps_match(ac.missing() & ~ac.will_be_requested())  # any_deps_missing(), narrowable
    return condition & ~(missing.ignore(may_be_missing) if may_be_missing else missing)
