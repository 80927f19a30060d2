"""`mlplatform.components.MLPipeline`: a pipeline declared in a project's defs.yaml loads, through Dagster's own
component loading, into the same definitions as the same spec in Python; bad YAML is refused naming the file, line
and field."""

import re
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.specs import CREDIT

CREDIT_YAML = """\
type: mlplatform.components.MLPipeline
attributes:
  name: credit
  description: "Credit default: will a customer miss payments on a new loan within 12 months?"
  intended_use: >-
    Ranks loan applications by default risk to route them to manual review. Not for automatic rejection, and not
    for applicants outside the population the training data covers.
  task: binary
  data:
    entity: customer_id
    timestamp: event_timestamp
    label: {column: default, classes: [0, 1], positive: 1}
    columns:
      age: {type: integer, min: 18, max: 100}
      income: {type: float, min: 0, max: 10000000}
      loan_amount: {type: float, min: 100, max: 1000000}
      loan_term_months: {type: integer, min: 6, max: 120}
      credit_utilization: {type: float, min: 0, max: 2}
      num_late_payments: {type: integer, min: 0, max: 100}
      employment_years: {type: float, min: 0, max: 70}
      num_open_accounts: {type: integer, min: 0, max: 100}
      home_ownership: {type: category, values: [rent, own, mortgage, other]}
      purpose: {type: category, values: [debt_consolidation, car, home_improvement, education, medical, other]}
    sensitive: {column: age_band, values: ["18-25", "26-40", "41-60", "60+"]}
  features:
    derived:
      loan_to_income: {op: ratio, inputs: [loan_amount, income]}
      monthly_payment: {op: ratio, inputs: [loan_amount, loan_term_months]}
      log_income: {op: log1p, inputs: [income]}
"""


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


def test_the_yaml_pipeline_is_the_same_spec_and_the_same_definitions_as_in_python(tmp_path, monkeypatch):
    from mlplatform.components import MLPipeline
    from mlplatform.definitions import build_definitions
    from mlplatform.settings import get_settings

    package = project(tmp_path, CREDIT_YAML, monkeypatch)
    defs = load(package)
    expected = build_definitions([CREDIT], get_settings())
    assert {a.key for a in defs.resolve_all_asset_specs()} == {a.key for a in expected.resolve_all_asset_specs()}
    assert {j.name for j in defs.resolve_all_job_defs()} == {j.name for j in expected.resolve_all_job_defs()}
    assert {s.name for s in defs.sensors or []} == {s.name for s in expected.sensors or []}
    import yaml

    component = MLPipeline.resolve_from_yaml(yaml.safe_dump(yaml.safe_load(CREDIT_YAML)["attributes"], sort_keys=False))
    assert component.spec() == CREDIT  # every field, defaults included


@pytest.mark.parametrize(("change", "where", "message"), [
    # a derived feature of a column the contract does not have
    (("inputs: [income]", "inputs: [salary]"), "defs.yaml:29 features.derived.log_income.inputs",
     "derived feature 'log_income' uses unknown columns ['salary']"),
    # a category without its values
    (("purpose: {type: category, values: [debt_consolidation, car, home_improvement, education, medical, other]}",
      "purpose: {type: category}"), "defs.yaml:23 data.columns.purpose.values",
     "column 'purpose' is a category without values"),
    # a classification label without its classes
    (("label: {column: default, classes: [0, 1], positive: 1}", "label: {column: default}"),
     "defs.yaml:12 data.label", "a binary label needs its classes"),
    # the positive class is not one of the classes
    (("positive: 1}", "positive: 2}"), "defs.yaml:12 data.label.positive", "positive_class 2"),
    # a task the platform does not have (Dagster does not check the Literal)
    (("task: binary", "task: ranking"), "defs.yaml:8 task", "task 'ranking' is not one of binary, multiclass"),
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
