"""Packaging: a registered model into the BentoML model store, then a Bento from `bentos/<service>/`."""

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.specs import Spec

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "bentos" / "credit_service"


@dataclass(frozen=True)
class BuiltBento:
    """A built Bento: its tag, where it lives, what it holds."""

    tag: str
    path: Path
    model_tag: str
    size_bytes: int
    dockerfile: Path


def save_model(spec: Spec, pipeline: Any, labels: dict[str, str], metadata: dict[str, Any]) -> str:
    """The fitted pipeline into the BentoML model store (under BENTOML_HOME); returns its tag."""
    import bentoml

    return str(bentoml.sklearn.save_model(spec.model_name, pipeline, labels=labels, metadata=metadata).tag)


def stage_context(target: Path, service_dir: Path = SERVICE_DIR, root: Path = ROOT) -> Path:
    """A build context holding the service, the platform's Python code and the lock file, nothing else."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(service_dir, target)
    shutil.copytree(root / "mlplatform", target / "mlplatform", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copyfile(root / "requirements.lock", target / "requirements.lock")
    return target


def build(spec: Spec, model_tag: str, context: Path, env: str, labels: dict[str, str]) -> BuiltBento:
    """Build the Bento for one model tag from a staged context."""
    import bentoml

    with contextlib.chdir(context):  # BentoML refuses build files outside the working directory
        bento = bentoml.bentos.build_bentofile(build_ctx=str(context), labels=labels,
                                               args={"spec": spec.name, "model_tag": model_tag, "env": env})
    path = Path(bento.path)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return BuiltBento(str(bento.tag), path, model_tag, size, path / "env" / "docker" / "Dockerfile")
