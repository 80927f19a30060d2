"""`mlplatform.components.MLPipeline`: a pipeline declared in a project's defs.yaml loads, through Dagster's own
component loading, into the same definitions as the same spec in Python; bad YAML is refused naming the file, line
and field."""

import re
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.components.scaffold import pipeline_yaml
from mlplatform_tests.pipelines import CREDIT, DEMO

CREDIT_YAML = (DEMO / "defs" / "credit" / "defs.yaml").read_text()
CHURN_YAML = pipeline_yaml("churn")  # the example `mlplatform init` and `dg scaffold` write
KINDS = ("ingest", "training", "promote", "monitoring", "rollback")


def project(tmp_path: Path, yaml_text: str, monkeypatch: pytest.MonkeyPatch, name: str = "credit") -> Path:
    """A user's project as `dg` lays it out: pyproject.toml, the package, `defs/<name>/defs.yaml`."""
    root = tmp_path / "user_project"
    package = root / "user_project"
    (package / "defs" / name).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "defs" / name / "defs.yaml").write_text(yaml_text)
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "user-project"
        version = "0.1.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "user_project"
        defs_module = "user_project.defs"
        """))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("MLPLATFORM_HOME", str(tmp_path / "home"))
    for module in [m for m in sys.modules if m == "user_project" or m.startswith("user_project.")]:
        monkeypatch.delitem(sys.modules, module)
    return package


def load(package: Path) -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=package)


def error_of(package: Path) -> str:
    with pytest.raises(Exception) as info:  # noqa: PT011  # Dagster wraps what the component raises
        load(package)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(chain)


def test_a_pipeline_in_a_projects_defs_folder_loads_with_its_jobs_sensors_and_spec(tmp_path, monkeypatch):
    from mlplatform.project import definitions, specs

    package = project(tmp_path, CREDIT_YAML, monkeypatch)
    assert specs(load(package)) == [CREDIT]  # every field, defaults included, travels with Dagster's own loading
    defs = definitions(package / "definitions.py")  # with the platform's resources and sensors
    assert {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")} == {
        f"credit_{kind}_job" for kind in KINDS}
    assert {s.name for s in defs.sensors or []} == {
        f"credit_{k}_sensor" for k in ("landing", "retrain", "rollback")} | {"automation_sensor", "dead_run_sensor"}
    assert {s.name for s in defs.schedules or []} == {"credit_monitoring_schedule"}


def test_several_pipelines_in_one_project_each_have_their_own_jobs_and_sensors(tmp_path, monkeypatch):
    from mlplatform.project import definitions, specs

    package = project(tmp_path, CREDIT_YAML, monkeypatch)
    (package / "defs" / "churn").mkdir()
    (package / "defs" / "churn" / "defs.yaml").write_text(CHURN_YAML)
    defs = definitions(package / "definitions.py")
    assert sorted(s.name for s in specs(defs)) == ["churn", "credit"]
    assert {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")} == {
        f"{name}_{kind}_job" for name in ("credit", "churn") for kind in KINDS}
    assert {s.name for s in defs.sensors or []} == {
        f"{name}_{kind}_sensor" for name in ("credit", "churn") for kind in ("landing", "retrain", "rollback")} | {
        "automation_sensor", "dead_run_sensor"}
    churn = next(s for s in specs(defs) if s.name == "churn")
    assert churn.estimator == "sklearn.ensemble.HistGradientBoostingClassifier" and churn.gate_thresholds[
        "floors"]["roc_auc"] == 0.7
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == "churn"} == {
        k.to_user_string().replace("credit/", "churn/") for k in graph.get_all_asset_keys() if k.path[0] == "credit"}
    assert defs.resolve_job_def("churn_ingest_job").partitions_def.name == "churn_files"


@pytest.mark.parametrize(("change", "where", "message"), [
    # a derived feature of a column the contract does not have
    (("inputs: [income]", "inputs: [salary]"), "defs.yaml:30 features.derived.log_income.inputs",
     "derived feature 'log_income' uses unknown columns ['salary']"),
    # a category without its values
    (("purpose: {type: category, values: [debt_consolidation, car, home_improvement, education, medical, other]}",
      "purpose: {type: category}"), "defs.yaml:24 data.columns.purpose.values",
     "column 'purpose' is a category without values"),
    # a classification label without its classes
    (("label: {column: default, classes: [0, 1], positive: 1}", "label: {column: default}"),
     "defs.yaml:13 data.label", "a binary label needs its classes"),
    # the positive class is not one of the classes
    (("positive: 1}", "positive: 2}"), "defs.yaml:13 data.label.positive", "positive_class 2"),
    # a task the platform does not have (Dagster does not check the Literal)
    (("task: binary", "task: ranking"), "defs.yaml:9 task", "task 'ranking' is not one of binary, multiclass"),
    # an estimator class that does not exist (found from the source, nothing imported)
    (("inputs: [income]}\n", "inputs: [income]}\n  training: {estimator: sklearn.ensemble.RandomForestClasifier}\n"),
     "defs.yaml:31 training.estimator", "sklearn.ensemble has no class or function 'RandomForestClasifier'"),
    (("inputs: [income]}\n", "inputs: [income]}\n  training: {estimator: xgboostt.XGBClassifier}\n"),
     "defs.yaml:31 training.estimator", "no module 'xgboostt' is installed or on the project's path"),
    (("inputs: [income]}\n", "inputs: [income]}\n  training: {estimator: random_forrest}\n"),
     "defs.yaml:31 training.estimator", "'random_forrest' is not a built-in estimator"),
    # a feature function in a module of the project that does not define it
    (("inputs: [income]}\n", "inputs: [income]}\n    function: user_project.features:nope\n"),
     "defs.yaml:31 features.function", "no module 'user_project.features'"),
])
def test_a_spec_level_mistake_names_the_file_the_line_and_the_field(tmp_path, monkeypatch, change, where, message):
    package = project(tmp_path, CREDIT_YAML.replace(*change), monkeypatch)
    text = error_of(package)
    assert where in text and message in text, text


@pytest.mark.parametrize(("change", "field"), [
    (("    entity: customer_id", "    entity: customer_id\n    entitty: typo"), "entitty"),  # unknown field
    (("age: {type: integer, min: 18, max: 100}", "age: {type: integer, min: eighteen, max: 100}"), "min"),
])
def test_a_bad_field_is_refused_by_the_components_schema_naming_the_file(tmp_path, monkeypatch, change, field):
    package = project(tmp_path, CREDIT_YAML.replace(*change), monkeypatch)
    text = error_of(package)
    assert re.search(rf"\.{field} at \S+/defs/credit/defs\.yaml:\d+", text), text  # the field, where it is


def test_init_refuses_a_package_name_that_would_shadow_a_module(tmp_path):
    from mlplatform.components.scaffold import ProjectExists, init_project

    with pytest.raises(ProjectExists, match="its package would be `platform`, which is already a module"):
        init_project(tmp_path / "platform")
    made = init_project(tmp_path / "My Shop")
    assert 'name = "My-Shop"' in (tmp_path / "My Shop" / "pyproject.toml").read_text()
    assert (tmp_path / "My Shop" / "my_shop" / "defs" / "churn" / "defs.yaml") in made


def test_the_monitoring_attributes_are_every_field_of_the_specs_monitoring_with_its_default():
    import dataclasses

    from mlplatform.components.pipeline import MonitoringPolicy
    from mlplatform.specs import Monitoring

    assert MonitoringPolicy().model_dump() == dataclasses.asdict(Monitoring())
