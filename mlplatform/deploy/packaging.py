"""Packaging: a registered model into the BentoML model store, then a Bento from `bentos/<service>/`.

`package()` runs the BentoML work in a child process with its own BENTOML_HOME: BentoML keeps its stores in
process-wide singletons, so one process could otherwise write into another platform's store. The child gets the
fitted pipeline that was registered (pickled, not re-read from MLflow: loading MLflow's skops artifact imports all of
scikit-learn, seconds per Bento); the blocking `prediction_contract` gate has already proved that the registered
artifact answers exactly like it.
"""

import contextlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlplatform.settings import PROJECT, requirements
from mlplatform.specs import Spec

ROOT = PROJECT
SERVICE_DIR = ROOT / "mlplatform" / "serving" / "bento"  # service.py and bentofile.yaml, shipped with the package
# What the Bento ships of the platform: the serving package and the modules it imports, and the router with its
# records (the container project runs the router from the primary's image). Nothing of Dagster or the ML stages.
BENTO_PACKAGES = ("mlplatform.serving",)
BENTO_MODULES = ("mlplatform", "mlplatform.specs", "mlplatform.settings", "mlplatform.lib",
                 "mlplatform.lib.predictions", "mlplatform.lib.explanations", "mlplatform.lib.features",
                 "mlplatform.lib.features.featurize", "mlplatform.lib.features.feast_repo",
                 "mlplatform.deploy", "mlplatform.deploy.records", "mlplatform.deploy.router")


def bento_modules() -> list[str]:
    """Every module the Bento ships, by dotted name (the packages expanded, found without importing them)."""
    import importlib.util

    names = list(BENTO_MODULES)
    for package in BENTO_PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None  # our own packages
        folder = Path(next(iter(spec.submodule_search_locations or [])))
        names += [package] + [f"{package}.{f.stem}" for f in sorted(folder.glob("*.py")) if f.stem != "__init__"]
    return names


def module_path(name: str) -> Path:
    """Where a shipped module lives relative to the project root (a package: its `__init__.py`)."""
    from mlplatform.code_versions import module_file

    return module_file(name).relative_to(ROOT)


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


def user_modules(spec: Spec) -> list[str]:
    """The user's modules the served model needs (the features function's, an estimator's or factory's) that no
    installed distribution provides: they travel inside the Bento, with their packages' `__init__.py`."""
    import importlib.util
    import sysconfig

    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")}
    names = []
    for ref in (spec.features_function, spec.estimator if "." in spec.estimator else ""):
        if not ref:
            continue
        module = ref.partition(":")[0] if ":" in ref else ref.rpartition(".")[0]
        found = importlib.util.find_spec(module)
        origin = Path(found.origin).resolve() if found and found.origin else None
        # installed: under this interpreter's library folders, or any site-packages (one linked in by a .pth file,
        # a --system-site-packages parent): a distribution provides it, the Bento's requirements pin it
        provided = origin is not None and (any(origin.is_relative_to(p) for p in installed)
                                           or {"site-packages", "dist-packages"} & set(origin.parts))
        if origin is not None and not provided and module not in names:
            names.append(module)
    return names


def _module_files(module: str) -> list[tuple[Path, Path]]:
    """(source, path inside the context) of every Python file of the module's top-level package: the module, the
    helpers it imports and the classes a pickled pipeline refers to all travel (a lone top-level module: itself)."""
    import importlib.util

    top = module.split(".")[0]
    found = importlib.util.find_spec(top)
    if found is None or not found.origin:
        return []
    if not found.submodule_search_locations:
        return [(Path(found.origin), Path(f"{top}.py"))] if found.origin.endswith(".py") else []
    folder = Path(found.origin).parent
    return [(f, Path(top) / f.relative_to(folder)) for f in sorted(folder.rglob("*.py"))
            if "__pycache__" not in f.parts]


def stage_context(target: Path, service_dir: Path = SERVICE_DIR, root: Path = ROOT,
                  extra_files: dict[str, str] | None = None, extra_modules: list[str] | None = None) -> Path:
    """A build context holding the service, the platform modules it needs (`bento_modules`), the user's modules
    (`extra_modules`, see `user_modules`) and the pinned requirements (`settings.requirements`), plus `extra_files`
    (name → text: the smoke set and the model card travel inside the Bento)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(service_dir, target)
    for name in bento_modules():
        relative = module_path(name)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target / relative)
    for module in extra_modules or []:
        for source, relative in _module_files(module):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            if not (target / relative).exists():
                shutil.copyfile(source, target / relative)
    (target / "requirements.lock").write_text(requirements(root))
    for name, text in (extra_files or {}).items():
        (target / name).write_text(text)
    return target


def smoke_set(pipeline: Any, spec: Spec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Request rows with the outputs the registered pipeline gives them, flat (`request.flat_outputs`): what the
    served Bento must answer."""
    import pandas as pd

    from mlplatform.lib import predictions
    from mlplatform.lib.features.featurize import featurize

    x = featurize(pd.DataFrame(rows), spec, keys=False)[spec.feature_names]
    return {"rows": rows, "outputs": [float(v) for v in predictions.output(pipeline, x, spec).reshape(-1)]}


def holdout_rows(frame: Any, spec: Spec, holdout_days: int, limit: int, seed: int) -> list[dict[str, Any]]:
    """Up to `limit` holdout rows of a training set as request rows (the contract's features only)."""
    from mlplatform.lib.explanations import frame_json
    from mlplatform.lib.training.train import holdout_mask

    held = frame[holdout_mask(frame, spec, holdout_days, seed)].head(limit)
    rows = frame_json(held[spec.contract_feature_names])
    return [dict(zip(rows["features"], row, strict=True)) for row in rows["rows"]]


def explainer_background(frame: Any, spec: Spec, holdout_days: int, seed: int) -> dict[str, Any]:
    """The background rows of the model's SHAP explainer: the evaluation's (`explanations.background`), as JSON."""
    from mlplatform.lib import explanations
    from mlplatform.lib.training.train import holdout

    return explanations.frame_json(explanations.background(holdout(frame, spec, holdout_days, seed), spec, seed))


def explainer_file(pipeline: Any, spec: Spec, background: dict[str, Any], seed: int) -> str:
    """`explainer.json`: the explainer built on the background rows, or why there is none (`/explain` says it)."""
    from mlplatform.lib import explanations

    try:
        return explanations.packed(explanations.Explainer(pipeline, spec,
                                                          explanations.frame_from_json(background, spec), seed))
    except explanations.ExplainerError as exc:
        return json.dumps({"problem": str(exc)})


def bento_file(bento_path: Path | str, name: str) -> Path:
    """A file that travels inside a built Bento (`smoke.json`, `model_card.md`)."""
    return Path(bento_path) / "src" / name


def build(spec: Spec, model_tag: str, context: Path, env: str, labels: dict[str, str]) -> BuiltBento:
    """Build the Bento for one model tag from a staged context; it carries `spec.json`, the pipeline's spec."""
    import bentoml

    from mlplatform.specs import spec_to_json

    (context / "spec.json").write_text(spec_to_json(spec))
    with contextlib.chdir(context):  # BentoML refuses build files outside the working directory
        bento = bentoml.bentos.build_bentofile(build_ctx=str(context), labels=labels,
                                               args={"spec": spec.name, "model_tag": model_tag, "env": env})
    path = Path(bento.path)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return BuiltBento(str(bento.tag), path, model_tag, size, path / "env" / "docker" / "Dockerfile")


def package(spec: Spec, pipeline: Any, bentoml_home: Path, env: str, labels: dict[str, str],
            metadata: dict[str, Any], smoke_rows: list[dict[str, Any]] | None = None,
            model_card: str = "", explainer_background: dict[str, Any] | None = None, seed: int = 0) -> BuiltBento:
    """Save the registered `pipeline` to the store and build its Bento, in a child process.

    The Bento carries `smoke.json` (`smoke_rows` with the pipeline's outputs: the deployer's smoke test),
    `model_card.md` and `explainer.json` (the SHAP explainer of `/explain`, built on `explainer_background`: model
    input rows as `explanations.frame_json` gives them).
    """
    # the child imports what this process imports: the user's modules (a feature function, an estimator factory)
    # live in their project, on this process's path, not the platform's
    path = os.pathsep.join(p for p in sys.path if p)
    environ = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": path}
    with tempfile.TemporaryDirectory(prefix="mlplatform-package-") as tmp:
        model_file = Path(tmp) / "pipeline.pkl"
        model_file.write_bytes(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL))
        from mlplatform.specs import spec_to_json

        request = {"spec": spec_to_json(spec), "pipeline": str(model_file), "env": env, "labels": labels,
                   "metadata": metadata, "smoke_rows": smoke_rows or [], "model_card": model_card,
                   "explainer_background": explainer_background, "seed": seed}
        done = subprocess.run([sys.executable, "-m", "mlplatform.deploy.packaging"], input=json.dumps(request),
                              text=True, capture_output=True, env=environ, cwd=ROOT, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"building the Bento failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return BuiltBento(result["tag"], Path(result["path"]), result["model_tag"], result["size_bytes"],
                      Path(result["dockerfile"]))


def _main() -> None:
    from mlplatform.specs import spec_from_json

    request = json.loads(sys.stdin.read())
    spec = spec_from_json(request["spec"])
    pipeline = pickle.loads(Path(request["pipeline"]).read_bytes())  # written by package() just before
    model_tag = save_model(spec, pipeline, request["labels"], request["metadata"])
    extra = {"model_card.md": request["model_card"] or f"# {spec.model_name}\n\n(no model card was given)\n"}
    if request["smoke_rows"]:
        extra["smoke.json"] = json.dumps(smoke_set(pipeline, spec, request["smoke_rows"]))
    if request["explainer_background"]:
        extra["explainer.json"] = explainer_file(pipeline, spec, request["explainer_background"], request["seed"])
    # BentoML refuses build contexts under hidden folders (like the default home `.mlplatform`): stage in tmp
    with tempfile.TemporaryDirectory(prefix="mlplatform-bento-") as tmp:
        context = stage_context(Path(tmp) / "context", extra_files=extra, extra_modules=user_modules(spec))
        built = build(spec, model_tag, context, request["env"], request["labels"])
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(built).items()}))


if __name__ == "__main__":
    _main()
