"""Jobs: per-partition ingestion and the unpartitioned training chain (training set → model → evaluation, gates).

Both run in one process: their steps are pandas work on one machine, and a fresh interpreter per step (the
multiprocess executor) costs several seconds of start-up per asset, more than the steps themselves.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from mlplatform.assets import key
from mlplatform.partitions import landed_files
from mlplatform.specs import Spec

INGEST_ASSETS = ("feature_registry", "raw", "validated", "labels", "features")
TRAINING_ASSETS = ("training_set", "model", "evaluation", "bento", "staging")


def job_name(spec: Spec, primary: bool, base: str) -> str:
    """The primary spec's jobs are `ingest_job` and `training_job`; others are prefixed with their name."""
    return f"{base}_job" if primary else f"{spec.name}_{base}_job"


def ingest_job(spec: Spec, primary: bool) -> UnresolvedAssetJobDefinition:
    selection = dg.AssetSelection.assets(*(key(spec, n) for n in INGEST_ASSETS))
    return dg.define_asset_job(job_name(spec, primary, "ingest"), selection=selection, partitions_def=landed_files(spec),
                               executor_def=dg.in_process_executor,
                               description=f"One landed file of {spec.name}: raw → validated → labels, features")


def training_job(spec: Spec, primary: bool, promotion: str = "manual") -> UnresolvedAssetJobDefinition:
    """Training set → model → evaluation (gates) → Bento → staging, and production under automatic promotion."""
    names = TRAINING_ASSETS + (("production",) if promotion == "automatic" else ())
    selection = dg.AssetSelection.assets(*(key(spec, n) for n in names))
    return dg.define_asset_job(job_name(spec, primary, "training"), selection=selection,
                               executor_def=dg.in_process_executor,
                               description=f"The unpartitioned chain of {spec.name}, from the training set to "
                                           f"staging{' and production' if promotion == 'automatic' else ''}")


def promote_job(spec: Spec, primary: bool) -> UnresolvedAssetJobDefinition:
    """What staging serves, to production (`mlplatform promote` runs it)."""
    return dg.define_asset_job(job_name(spec, primary, "promote"), selection=[key(spec, "production")],
                               executor_def=dg.in_process_executor,
                               description=f"Promote the version staging serves to production ({spec.name})")
