"""A user's own project, as a user makes and runs it with the platform installed from its wheel: `mlplatform
init`, the example YAML edited for a real dataset (scikit-learn's wine: multiclass) with a feature function of the
project's own, files landed, `mlplatform ingest` to a model staging serves over HTTP; Dagster's and dg's own tools
in the project; the user's function in the code versions; the quiet CLI and its exit codes."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from mlplatform.deploy.processes import free_port
from mlplatform_tests.datasets import wine

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"  # the checkout's environment: its libraries, its uv
DG = "import sys; from dagster_dg_cli.cli import main; sys.argv[0] = 'dg'; sys.exit(main())"

WINE_YAML = """\
type: mlplatform.components.MLPipeline
attributes:
  name: wine
  task: multiclass
  description: "Which cultivar a wine comes from, by its chemistry."
  data:
    entity: row_id
    timestamp: event_timestamp
    label: {column: cultivar, classes: [class_0, class_1, class_2]}
    columns:
COLUMNS
  features:
    derived:
      phenols_ratio: {op: ratio, inputs: [flavanoids, total_phenols]}
    function: winery.features:colour
    function_columns: [colour_per_hue]
  training:
    estimator: sklearn.ensemble.RandomForestClassifier
    params: {n_estimators: 40, random_state: 0}
  gates: {floors: {f1_macro: 0.6}}
"""

FEATURES = '''\
"""The project's own features."""

import pandas as pd


def colour(contract: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"colour_per_hue": contract["color_intensity"] / contract["hue"]}, index=contract.index)
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the platform installed from its wheel, as a user installs it: its own site-packages holds
    the wheel's `mlplatform` (no checkout on its path); the rest of the stack comes from the checkout's environment
    (a `.pth` line: installing it again would only download the same pins)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # built from a copy: the build leaves nothing in the checkout
    shutil.copytree(REPO / "mlplatform", source / "mlplatform", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([str(BIN / "python"), "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("mlplatform-*.whl")
    venv = tmp / "venv"
    subprocess.run([str(BIN / "python"), "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([str(BIN / "uv"), "pip", "install", "--quiet", "--no-deps", "--python", str(venv / "bin" / "python"),
                    str(wheel)], check=True)
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    (stack,) = (REPO / ".venv" / "lib").glob("python3.*/site-packages")
    (site / "stack.pth").write_text(f"{stack}\n")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mlplatform; print(mlplatform.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's, not the checkout's
    return venv / "bin"


def run(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


@pytest.mark.e2e
def test_a_project_of_ones_own_from_init_to_a_served_prediction(tmp_path, installed):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "DAGSTER_", "MLFLOW_"))}
    env |= {"MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port())}
    mlp, python = str(installed / "mlplatform"), str(installed / "python")
    made = run([mlp, "init", "winery", "--pipeline", "wine"], tmp_path, env)
    root = tmp_path / "winery"
    assert "edit winery/defs/wine/defs.yaml" in made.stdout
    assert run([mlp, "init", "winery"], tmp_path, env, check=False).returncode == 2  # not over an existing project
    assert run([mlp, "validate"], root, env).stdout.startswith("wine: binary")  # the example, as made

    data = wine()
    columns = "".join(f"      {c.name}: {{type: float, min: 0}}\n" for c in data.spec.numeric)
    (root / "winery" / "defs" / "wine" / "defs.yaml").write_text(WINE_YAML.replace("COLUMNS\n", columns))
    (root / "winery" / "features.py").write_text(FEATURES)
    checked = run([mlp, "validate"], root, env)
    assert checked.stdout.startswith("wine: multiclass, 15 features, estimator sklearn.ensemble.RandomForest")

    days = data.frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    for day in sorted(days.unique()):
        data.frame[days == day].to_csv(root / "landing" / "wine" / f"{day}.csv", index=False)
    try:
        ingested = run([mlp, "ingest"], root, env)
        lines = ingested.stdout.splitlines()
        assert len(lines) <= 12, ingested.stdout  # a line per file, the training, the summary: no Dagster events
        assert "DEBUG" not in ingested.stdout + ingested.stderr and "BetaWarning" not in ingested.stderr
        assert lines[-1] == "wine: 6 ingested, 0 unchanged, 0 rejected, 0 refused; training ok (all good)"
        assert any(line.startswith("wine_training_job: ok (wine_model v1") and "staging serves it" in line
                   for line in lines), lines
        assert (root / ".mlplatform" / "dagster").is_dir()  # all state under the project's own home

        key = next(line for line in (root / ".mlplatform" / "deployments" / "staging" / "api-keys").read_text()
                   .splitlines() if line and not line.startswith("#"))
        row = {name: float(data.frame.iloc[0][name]) for name in data.spec.contract_feature_names}
        answer = httpx.post(f"http://127.0.0.1:{env['MLPLATFORM_STAGING_PORT']}/predict", timeout=30,
                            json={"rows": [row]}, headers={"x-api-key": key})
        assert answer.status_code == 200, answer.text
        assert answer.json()["labels"][0] in ("class_0", "class_1", "class_2")

        again = run([mlp, "ingest"], root, env)
        assert again.stdout.splitlines()[-1] == (
            "wine: 0 ingested, 6 unchanged, 0 rejected, 0 refused; training unchanged (all good)")

        # Dagster's and dg's own tools find the project's code location
        run([python, "-m", "dagster", "definitions", "validate", "-m", "winery.definitions"], root, env)
        home = {**env, "DAGSTER_HOME": str(root / ".mlplatform" / "dagster")}  # as the project's README says
        run([python, "-m", "dagster", "job", "execute", "-m", "winery.definitions", "-j", "wine_ingest_job",
             "--tags", json.dumps({"dagster/partition": "2025-03-01"})], root, home)
        listed = json.loads(run([python, "-c", DG, "list", "defs", "--json"], root, env).stdout)
        assert {"wine_ingest_job", "wine_training_job"} <= {j["name"] for j in listed["jobs"]}
        assert "mlplatform.components.MLPipeline" in run([python, "-c", DG, "list", "components"], root, env).stdout

        # the project's feature function is part of the code version of `features`, and of nothing upstream
        def code_changed() -> set[str]:
            stale = json.loads(run([mlp, "plan", "--json"], root, env).stdout)["stale"]
            return {e["asset"] for e in stale if any("code version" in r for r in e["reasons"])}

        assert code_changed() == set()
        edited = FEATURES.replace('/ contract["hue"]', '/ (contract["hue"] + 1)')
        assert edited != FEATURES
        (root / "winery" / "features.py").write_text(edited)
        assert code_changed() == {"wine/features"}  # raw, validated and labels do not call it
    finally:
        run([mlp, "stop", "staging"], root, env, check=False)


@pytest.mark.e2e
def test_a_mistake_in_a_projects_yaml_is_a_usage_error_naming_file_line_and_field(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "DAGSTER_", "MLFLOW_"))}
    mlp = str(BIN / "mlplatform")
    run([mlp, "init", "shop"], tmp_path, env)
    pipeline = tmp_path / "shop" / "shop" / "defs" / "churn" / "defs.yaml"
    pipeline.write_text(pipeline.read_text().replace("inputs: [monthly_spend, tenure_months]",
                                                     "inputs: [monthly_spend, months]"))
    for command in (["validate"], ["ingest"], ["loop"], ["--project", str(tmp_path / "shop"), "plan"]):
        result = run([mlp, *command], tmp_path / "shop" if command[0] != "--project" else tmp_path, env, check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "defs.yaml:" in result.stderr and "features.derived.spend_per_tenure_month.inputs" in result.stderr
        assert "unknown columns ['months']" in result.stderr
    outside = run([mlp, "ingest"], tmp_path, env, check=False)
    assert outside.returncode == 2 and "no mlplatform project in" in outside.stderr

    # fixed, and a second pipeline beside it: commands about one pipeline ask which
    pipeline.write_text(pipeline.read_text().replace("inputs: [monthly_spend, months]",
                                                     "inputs: [monthly_spend, tenure_months]"))
    run([str(BIN / "dg"), "scaffold", "defs", "mlplatform.components.MLPipeline", "orders"], tmp_path / "shop", env)
    assert "name: orders" in (pipeline.parent.parent / "orders" / "defs.yaml").read_text()
    listed = run([mlp, "validate"], tmp_path / "shop", env).stdout.splitlines()
    assert [line.split(":")[0] for line in listed] == ["churn", "orders"]
    which = run([mlp, "ingest"], tmp_path / "shop", env, check=False)
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", which.stderr).split())  # typer's usage box wraps the message
    assert which.returncode == 2 and "the project has 2 pipelines (churn, orders): name one" in said, said
    (tmp_path / "shop" / "landing" / "orders").mkdir(exist_ok=True)
    alone = run([mlp, "ingest", "--pipeline", "orders", "--no-train"], tmp_path / "shop", env)
    assert alone.stdout.splitlines()[-1] == (
        "orders: 0 ingested, 0 unchanged, 0 rejected, 0 refused; training not run (all good)")
