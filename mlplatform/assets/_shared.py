"""Helpers every asset layer uses: asset keys, UI tables, and the automation condition of derived assets."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import dagster as dg

from mlplatform.specs import Spec

# pandas.DataFrame, named loosely so the code location loads without importing pandas (~1.5 s here).
DataFrame: TypeAlias = Any


F = TypeVar("F", bound=Callable[..., Any])

# Concurrency pools: steps that touch a store shared by every pipeline of the home. The production profile runs
# several runs at once and gives each pool one step at a time (dagster.yaml `concurrency.pools.default_limit: 1`);
# the embedded profile runs one run at a time anyway.
FEAST_REGISTRY_POOL = "feast_registry"  # Feast's registry apply (read-modify-write of the whole registry)
BENTOML_STORE_POOL = "bentoml_store"  # models and Bentos saved into the home's BentoML store
DEPLOY_POOL = "deploy"  # staging and production change (records, processes, the audit log)


def spec_config(config_class: type[dg.Config]) -> Callable[[F], F]:
    """Give Dagster `config_class` (run config whose defaults are the spec's, built per spec) as the class of the
    asset's `config` parameter, which the source annotates with its static base so that the body type-checks.
    Apply it below `@dg.asset`: Dagster reads the parameter's class when the asset is defined."""

    def apply(fn: F) -> F:
        fn.__annotations__["config"] = config_class
        return fn

    return apply


def key(spec: Spec, name: str) -> dg.AssetKey:
    """Asset keys are prefixed by the spec name, so two specs never collide."""
    return dg.AssetKey([spec.name, name])


def table_schema(frame: DataFrame) -> dg.TableSchema:
    """Column names and dtypes of a frame, for the UI's column view."""
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])


def table(frame: DataFrame, limit: int = 20, missing: str = "—") -> dg.TableMetadataValue:
    """The first rows of a small frame as a UI table (values as text; a missing value as `missing`, never "nan")."""
    first = frame.head(limit)
    head = first.astype(object).where(first.notna(), missing).astype(str)
    columns = [dg.TableColumn(str(c), "string") for c in head.columns]
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in head.to_dict("records")],
                                  schema=dg.TableSchema(columns=columns))


def rebuild_on_change(partitioned: bool, lookback: timedelta | None = None,
                      may_be_missing: dg.AssetSelection | None = None,
                      not_triggered_by: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Eager, with four changes: an upstream update counts only when its data version changed (re-running an
    unchanged input keeps this fresh), a new code version rebuilds it, a failed blocking check upstream holds it
    back, and for an unpartitioned asset over partitions a partition that never passed its gate (so stays missing)
    does not block it forever.

    A time-partitioned asset rebuilds its latest partition, or those within `lookback` of now; a partitioned
    asset waits for its inputs' partitions, except those of `may_be_missing`. Updates of `not_triggered_by` (policy
    edges: what orders an asset or picks its reference) do not rebuild it.
    """
    ac = dg.AutomationCondition
    updated = ac.newly_updated() & ac.data_version_changed() & ~ac.executed_with_root_target()
    trigger = ac.newly_missing() | ac.code_version_changed() | ac.any_deps_match(updated | ac.will_be_requested())
    window: dg.AutomationCondition = ac.in_latest_time_window(lookback) if lookback else ac.in_latest_time_window()
    # Dagster types since_last_handled() for conditions over asset and check keys; these are over asset keys
    condition = (window & trigger.since_last_handled() & ~ac.any_deps_in_progress()  # type: ignore[misc, operator]
                 & ~ac.in_progress() & ac.all_deps_blocking_checks_passed())
    if partitioned:
        missing = ac.any_deps_match(ac.missing() & ~ac.will_be_requested())  # any_deps_missing(), narrowable
        condition = condition & ~(missing.ignore(may_be_missing) if may_be_missing else missing)
    return condition.ignore(not_triggered_by) if not_triggered_by else condition


def label_metadata(frame: DataFrame, spec: Spec) -> dict[str, float | dg.MetadataValue]:
    """The labels at a glance: binary the positive rate, multiclass the count per class, regression the mean."""
    if not len(frame):
        return {}
    if spec.task == "binary":
        return {"label_rate": float((frame[spec.label] == spec.positive_class).mean())}
    if spec.task == "multiclass":
        counts = frame[spec.label].value_counts()
        return {"label_counts": dg.MetadataValue.json({str(c): int(counts.get(c, 0)) for c in spec.classes})}
    return {"label_mean": float(frame[spec.label].mean())}
