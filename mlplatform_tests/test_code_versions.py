"""Code versions name modules that exist, a move fails loudly, and the Bento ships every module serving imports."""

import ast
import importlib.util
import shutil
from pathlib import Path

import pytest

from mlplatform.code_versions import PROJECT, Sources, UnknownSource, module_file
from mlplatform.definitions import build_definitions
from mlplatform.deploy.packaging import SERVICE_DIR, bento_modules, stage_context
from mlplatform_tests.conftest import make_settings
from mlplatform_tests.pipelines import CREDIT


class Recording(Sources):
    """Sources that remember every module and file a code version names."""

    named: list[str] = []

    def version(self, *modules: str, files: tuple[str, ...] = (), config: object = ()) -> str:
        self.named.extend([*modules, *files])
        return super().version(*modules, files=files, config=config)


def test_every_source_a_code_version_names_resolves_inside_the_project(tmp_path):
    sources = Recording()
    defs = build_definitions([CREDIT], make_settings(tmp_path), sources)
    assert len(defs.resolve_asset_graph().get_all_asset_keys()) == 15
    modules = {n.partition(":")[0] for n in sources.named if not n.endswith((".yaml", ".lock", ".py"))}
    assert {"mlplatform.lib.data.validation", "mlplatform.lib.training.train", "mlplatform.serving.scorer",
            "mlplatform.deploy.embedded"} <= modules
    for name in modules:
        assert module_file(name).is_relative_to(PROJECT / "mlplatform"), name
    for name in (n for n in sources.named if n.endswith((".yaml", ".lock", ".py"))):
        assert (PROJECT / name).is_file(), name


def test_a_missing_module_function_or_file_is_named():
    with pytest.raises(UnknownSource, match="code version source 'mlplatform.lib.data.nope': no such module"):
        Sources().version("mlplatform.lib.data.nope")
    with pytest.raises(UnknownSource, match="no function or class 'nope' to version"):
        Sources().version("mlplatform.lib.data.labels:nope")
    with pytest.raises(UnknownSource, match="bentos/nope.yaml: no such file"):
        Sources().version(files=("bentos/nope.yaml",))


def test_a_module_moved_away_in_the_checkout_fails_loading_with_its_path(tmp_path):
    root = tmp_path / "checkout"
    shutil.copytree(PROJECT / "mlplatform", root / "mlplatform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "bentos", root / "bentos")
    shutil.copy(PROJECT / "requirements.lock", root / "requirements.lock")
    build_definitions([CREDIT], make_settings(tmp_path / "home"), Sources(root))  # the copy loads as it is
    (root / "mlplatform" / "lib" / "data" / "labels.py").rename(root / "mlplatform" / "lib" / "labels.py")
    with pytest.raises(UnknownSource, match=r"lib/data/labels.py: no such file"):
        build_definitions([CREDIT], make_settings(tmp_path / "home"), Sources(root))


def _platform_imports(path: Path) -> set[str]:
    """Every `mlplatform` module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlplatform")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlplatform"):
            found.add(node.module)
            for alias in node.names:  # `from mlplatform.serving import auth`: a submodule
                if importlib.util.find_spec(f"{node.module}.{alias.name}") if _is_package(node.module) else False:
                    found.add(f"{node.module}.{alias.name}")
    return found


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return bool(spec and spec.submodule_search_locations)


def test_the_bento_ships_every_platform_module_serving_imports_and_nothing_of_dagster(tmp_path):
    shipped = set(bento_modules())
    files = [SERVICE_DIR / "service.py", *(module_file(m) for m in shipped)]
    imported = set().union(*(_platform_imports(f) for f in files))
    assert imported <= shipped, f"imported by the Bento but not shipped: {sorted(imported - shipped)}"
    context = stage_context(tmp_path / "context")
    staged = {p.relative_to(context).as_posix() for p in (context / "mlplatform").rglob("*.py")}
    assert staged == {module_file(m).relative_to(PROJECT).as_posix() for m in shipped}
    assert not any(p.startswith(("mlplatform/assets", "mlplatform/orchestration", "mlplatform/lib/training"))
                   for p in staged)
    sources = [(context / p).read_text() for p in staged]
    assert not any("import dagster" in s for s in sources)


def test_a_reference_is_checked_in_its_source_without_importing_it():

    from mlplatform.code_versions import reference_problem

    for found in ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.linear_model.LogisticRegression",
                  "scipy.stats:ks_2samp", "numpy.linalg.norm", "pandas.api.types.is_numeric_dtype",
                  "mlplatform_tests.datasets:cancer_features"):
        assert reference_problem(found) is None, found
    assert "has no class or function 'RandomForestClasifier'" in str(
        reference_problem("sklearn.ensemble.RandomForestClasifier"))
    assert "no module 'sklearn.ensembl'" in str(reference_problem("sklearn.ensembl.RandomForestClassifier"))
    assert "no module 'sklearn.linear_model.LogisticRegression'" in str(  # a method is not a class or function
        reference_problem("sklearn.linear_model.LogisticRegression.predict"))


def test_an_installed_platform_pins_what_an_index_installs_not_the_users_project(tmp_path, monkeypatch):
    from mlplatform.settings import requirements

    site = tmp_path / "site"
    (site / "user_project-0.1.0.dist-info").mkdir(parents=True)
    (site / "user_project-0.1.0.dist-info" / "METADATA").write_text("Name: user-project\nVersion: 0.1.0\n")
    monkeypatch.syspath_prepend(str(site))
    no_lock = tmp_path / "installed"  # no requirements.lock next to the package: the installed distributions
    assert "user-project==0.1.0" in requirements(no_lock).splitlines()
    monkeypatch.setenv("MLPLATFORM_PROJECT", str(site))  # the same folder as the user's project: not pinned
    pins = requirements(no_lock).splitlines()
    assert "user-project==0.1.0" not in pins and "scikit-learn==1.9.1" in pins
    assert not any(p.startswith("mlplatform==") for p in pins)
