"""Starting files: a pipeline's `defs.yaml` (`dg scaffold defs mlplatform.components.MLPipeline <name>`, and the
example of a new project) and a whole user project (`mlplatform init PATH`)."""

import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import dagster as dg

COMPONENT_TYPE = "mlplatform.components.MLPipeline"


def pipeline_yaml(name: str, type_name: str = COMPONENT_TYPE) -> str:
    """An example pipeline to edit: every section, with the defaults of what it leaves out in comments."""
    return textwrap.dedent(f"""\
        # The pipeline `{name}`: edit the data contract to your files, land them (CSV or parquet, one file per
        # partition, e.g. 2026-01-01.csv) in the landing folder `landing/{name}/`, then `mlplatform ingest`.
        # Every field and its default: mlplatform's README, "Pipeline YAML".
        type: {type_name}
        attributes:
          name: {name}                            # names its assets ({name}/raw...), jobs ({name}_ingest_job...), model
          task: binary                            # binary | multiclass | regression
          description: "Will an account cancel its plan within 30 days?"
          intended_use: "Ranks accounts for the retention team. Not for pricing decisions."
          data:
            entity: account_id                    # the id column: one row per entity and timestamp
            timestamp: event_timestamp
            label: {{column: churned, classes: [0, 1], positive: 1}}   # regression: {{column: y, min: 0, max: 100}}
            columns:                              # every input column: integer | float | category
              tenure_months: {{type: integer, min: 0, max: 600}}
              monthly_spend: {{type: float, min: 0, max: 100000, nullable: true}}
              plan: {{type: category, values: [basic, pro, enterprise]}}
            # sensitive: {{column: age_band, values: ["18-25", "26-40", "41+"]}}   # fairness slices, never an input
            # max_bad_row_share: 0.05             # a file with more bad rows is rejected whole
          features:
            derived:                              # ratio | log1p | product | difference of contract columns
              spend_per_tenure_month: {{op: ratio, inputs: [monthly_spend, tenure_months]}}
            # function: my_project.features:build  # your own: a DataFrame of the columns in function_columns
            # function_columns: [my_feature]
          training:
            estimator: sklearn.ensemble.HistGradientBoostingClassifier   # or a factory my_project.models:build
            params: {{max_iter: 200}}
            # seed: 42
            # holdout_days: 2                     # the latest days of label time are held out
          gates:
            floors: {{roc_auc: 0.7}}              # a candidate below a floor is not deployed
          # monitoring: {{drift_warn_share: 0.2, drift_error_share: 0.3, retrain_after_drifted_batches: 3}}
          # promotion: manual                     # or automatic: production follows staging
          # retraining: on_new_data               # or on_trigger: only drift or live performance retrains
        """)


class PipelineScaffolder(dg.Scaffolder):
    """`dg scaffold defs mlplatform.components.MLPipeline <name>`: the example pipeline, named after its folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        request.target_path.mkdir(parents=True, exist_ok=True)
        name = _identifier(request.target_path.name)
        (request.target_path / "defs.yaml").write_text(pipeline_yaml(name, request.type_name))


def _identifier(text: str) -> str:
    name = re.sub(r"[^0-9a-z_]+", "_", text.lower()).strip("_") or "project"
    return f"p_{name}" if name[0].isdigit() else name


class ProjectExists(FileExistsError):
    """`mlplatform init` into a folder that already holds files."""


def init_project(root: Path, pipeline: str = "churn") -> list[Path]:
    """A user project holding only its own things: its pyproject (depending on mlplatform), a package whose
    definitions load its defs folder, one example pipeline, the landing folder and a README with the next commands.
    Returns the files written."""
    root = root.expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        raise ProjectExists(f"{root} is not empty: `mlplatform init` makes a new project in a new or empty folder")
    package, pipeline = _identifier(root.name), _identifier(pipeline)
    if package in sys.stdlib_module_names or importlib.util.find_spec(package) is not None:
        raise ProjectExists(f"{root.name}: its package would be `{package}`, which is already a module of Python or "
                            "an installed library; choose another folder name")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-._") or package
    written = []
    for relative, text in _project_files(root.name, name, package, pipeline).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        written.append(path)
    return written


def _project_files(folder: str, name: str, package: str, pipeline: str) -> dict[str, str]:
    """The files of a new project by relative path (dedented when written)."""
    return {
        "pyproject.toml": f"""\
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = ">=3.11,<3.12"
            dependencies = ["mlplatform"]

            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [tool.setuptools.packages.find]
            include = ["{package}*"]

            # A Dagster project: `dagster dev`, `dagster job execute -m {package}.definitions`, `dg list defs` and
            # `mlplatform` find its pipelines through these.
            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "{package}"
            defs_module = "{package}.defs"

            [tool.dagster]
            module_name = "{package}.definitions"
            code_location_name = "{package}"
            """,
        f"{package}/__init__.py": f'"""The {folder} project: its pipelines are in `defs/`, one folder each."""\n',
        f"{package}/definitions.py": f'''\
            """The code location of {folder}: every pipeline in `defs/` on the platform's resources."""

            from mlplatform.project import definitions

            defs = definitions(__file__)
            ''',
        f"{package}/defs/__init__.py": "",
        f"{package}/defs/{pipeline}/defs.yaml": pipeline_yaml(pipeline),
        f"landing/{pipeline}/.keep": "",
        ".gitignore": ".mlplatform/\nlanding/*/*\n!landing/*/.keep\n__pycache__/\n",
        "README.md": f"""\
            # {folder}

            Pipelines of the `mlplatform` CI/CD platform, one folder each in `{package}/defs/` (`defs.yaml`).

            ```bash
            mlplatform ingest        # land files in landing/{pipeline}/ first: validate, features, train, stage
            mlplatform status        # what serves where
            mlplatform promote       # staging's version to production
            mlplatform dev           # the Dagster UI and daemon on http://127.0.0.1:3000
            dg list defs             # with dagster-dg-cli installed
            ```

            All state (Dagster, MLflow, Feast, Bentos, quarantine) is under `.mlplatform/`. Dagster's own commands
            use it when `DAGSTER_HOME` points there (`mlplatform` sets it itself; set it per command, not with
            `export`, so that another project's commands do not write here):

            ```bash
            DAGSTER_HOME=$PWD/.mlplatform/dagster dagster definitions validate -m {package}.definitions
            DAGSTER_HOME=$PWD/.mlplatform/dagster dagster job execute -m {package}.definitions \\
                -j {pipeline}_training_job
            ```

            A second pipeline: `dg scaffold defs mlplatform.components.MLPipeline <name>`, or copy a folder of
            `{package}/defs/`.
            """,
    }
