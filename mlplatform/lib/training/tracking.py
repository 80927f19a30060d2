"""MLflow tracking and registry for a training run, through one explicit MlflowClient (no global run state)."""

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.settings import PROJECT, requirements
from mlplatform.specs import Spec

ROOT = PROJECT
CHALLENGER = "challenger"
CHAMPION = "champion"


@dataclass(frozen=True)
class TrackedModel:
    """Where a trained model lives in MLflow."""

    run_id: str
    model_uri: str
    name: str
    version: str


def git_commit(root: Path | None = None) -> str:
    """The commit the code ran from: the project's (MLPLATFORM_PROJECT, where its pipelines and functions are), else
    the platform checkout's; with '-dirty' when the work tree had changes ('unknown' outside git)."""
    root = root or Path(os.environ.get("MLPLATFORM_PROJECT", ROOT))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def lock_hash(root: Path = ROOT) -> str:
    """The hash of the pinned requirements (`settings.requirements`)."""
    return hashlib.sha256(requirements(root).encode()).hexdigest()[:16]


def experiment_id(client: Any, spec: Spec, artifact_root: str) -> str:
    """The spec's experiment, created with its artifacts under the platform home (not the working directory), or
    on a tracking server where the server keeps them (`mlflow-artifacts:`, uploaded over HTTP)."""
    name = f"mlplatform/{spec.name}"
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    if client.tracking_uri.startswith(("http://", "https://")):
        return client.create_experiment(name)
    return client.create_experiment(name, artifact_location=Path(artifact_root, spec.name).resolve().as_uri())


def pip_requirements(pipeline: Any = None) -> list[str]:
    """What the logged model needs to load, pinned to the versions it was trained with (no slow inference): the
    scientific stack, plus the distribution of every estimator class from outside it (e.g. lightgbm)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    names = ["scikit-learn", "pandas", "numpy", "cloudpickle", "skops"]
    owners = packages_distributions()
    for module in _model_modules(pipeline):
        for dist in owners.get(module.split(".")[0], []):
            if dist not in names and dist != "mlplatform":
                names.append(dist)
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def _model_modules(pipeline: Any) -> list[str]:
    steps = getattr(pipeline, "steps", None) or ([("model", pipeline)] if pipeline is not None else [])
    return [type(step).__module__ for _, step in steps]


def trusted_types(pipeline: Any) -> list[str]:
    """The types skops would refuse to load from this model (e.g. HistGradientBoosting's TreePredictor): the
    platform trained it, so they are trusted by name, and the registered model loads back for every estimator."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def log_and_register(client: Any, tracking_uri: str, artifact_root: str, spec: Spec, pipeline: Any,
                     example: pd.DataFrame, params: dict[str, Any], metrics: dict[str, float],
                     tags: dict[str, str]) -> TrackedModel:
    """One MLflow run: params, metrics, lineage tags and the model with signature; registered as `challenger`."""
    import mlflow
    from mlflow.models import infer_signature

    run = client.create_run(experiment_id(client, spec, artifact_root), tags=tags,
                            run_name=f"{spec.name}-{tags['dagster.run_id'][:8]}")
    run_id = run.info.run_id
    try:
        mlflow.set_tracking_uri(tracking_uri)
        client.log_batch(run_id, params=[mlflow.entities.Param(k, json.dumps(v, sort_keys=True) if isinstance(v, dict)
                                                               else str(v)) for k, v in params.items()],
                         metrics=[mlflow.entities.Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        predict_fn = "predict_proba" if spec.is_classification else "predict"
        signature = infer_signature(example, getattr(pipeline, predict_fn)(example))
        with mlflow.start_run(run_id=run_id):
            # pyfunc (and `mlflow models serve`) answers with class probabilities (or values), like the service
            info = mlflow.sklearn.log_model(pipeline, name="model", signature=signature, input_example=example.head(5),
                                            pip_requirements=pip_requirements(pipeline), pyfunc_predict_fn=predict_fn,
                                            skops_trusted_types=trusted_types(pipeline))
        version = mlflow.register_model(info.model_uri, spec.model_name, tags=tags)
        client.set_registered_model_alias(spec.model_name, CHALLENGER, version.version)
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    return TrackedModel(run_id, info.model_uri, spec.model_name, str(version.version))


@dataclass(frozen=True)
class Champion:
    """The registered version that currently holds the `champion` alias, loaded."""

    version: str
    model: Any


def load_champion(client: Any, tracking_uri: str, spec: Spec) -> Champion | None:
    """The spec's champion, or None when no version holds the alias yet."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(spec.model_name, CHAMPION)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return Champion(str(version.version), load_version(tracking_uri, spec, str(version.version)))


def load_version(tracking_uri: str, spec: Spec, version: str) -> Any:
    """A registered version's fitted pipeline."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{spec.model_name}/{version}")


def champion_version(client: Any, spec: Spec) -> str | None:
    """The version number holding the `champion` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(spec.model_name, CHAMPION).version)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


@dataclass(frozen=True)
class Reference:
    """The training data a model version was fitted on: the data version its run recorded."""

    model_version: str
    data_version: str
    is_champion: bool


def training_references(client: Any, spec: Spec) -> Iterator[Reference]:
    """The training references a batch can be judged against, best first: the champion's, then every other
    registered version's, newest first (read lazily: usually the first one serves)."""
    champion = champion_version(client, spec)
    versions = sorted(client.search_model_versions(f"name='{spec.model_name}'"), key=lambda v: -int(v.version))
    for version in sorted(versions, key=lambda v: str(v.version) != champion):  # stable: the champion first
        run = client.get_run(version.run_id)
        yield Reference(str(version.version), run.data.tags["training_set.data_version"],
                        str(version.version) == champion)


def move_champion(client: Any, spec: Spec, version: str, by: str, reason: str) -> str | None:
    """Give `version` the `champion` alias; the version that held it is recorded on the new one and returned."""
    previous = champion_version(client, spec)
    client.set_registered_model_alias(spec.model_name, CHAMPION, version)
    for tag, value in {"mlplatform.previous_champion": previous or "none", "mlplatform.champion_by": by,
                       "mlplatform.champion_reason": reason[:500]}.items():
        client.set_model_version_tag(spec.model_name, version, tag, value)
    return previous


def registered_predictor(tracking_uri: str, model_uri: str) -> Any:
    """The logged model as a consumer loads it (pyfunc, signature enforced): frame → class probabilities."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri).predict


def record_evaluation(client: Any, tracked: TrackedModel, metrics: dict[str, float], gates: dict[str, bool],
                      folder: Path) -> None:
    """Gate outcomes as tags on the run and the model version; metrics and the report files on the run."""
    import mlflow

    tags = {f"gate.{name}": "passed" if ok else "failed" for name, ok in gates.items()}
    tags["gates"] = "passed" if all(gates.values()) else "failed"
    client.log_batch(tracked.run_id,
                     metrics=[mlflow.entities.Metric(f"eval_{k}", float(v), 0, 0) for k, v in metrics.items()],
                     tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()])
    for k, v in tags.items():
        client.set_model_version_tag(tracked.name, tracked.version, k, v)
    client.log_artifacts(tracked.run_id, str(folder), artifact_path="evaluation")
    client.update_model_version(tracked.name, tracked.version, description=(
        f"Gates {tags['gates']}: " + ", ".join(f"{n} {'ok' if ok else 'FAILED'}" for n, ok in gates.items())
        + ". Model card and report: run artifacts under evaluation/."))
