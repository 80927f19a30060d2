"""`mlplatform.components.MLPipeline`: a whole pipeline declared in a project's `defs.yaml`, the spec as YAML
attributes (a commented example: `scaffold.pipeline_yaml`, what `mlplatform init` and `dg scaffold` write; every
field and default: the README's "Pipeline YAML").

Dagster checks the attributes' types (its errors name the file and line); what only the spec can check (a derived
feature of an unknown column, a class list for a regression...) is raised naming `defs.yaml:<line>` and the field.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import ConfigDict, Field

from mlplatform.components.scaffold import PipelineScaffolder
from mlplatform.specs import Categorical, Derived, Gates, Metric, Monitoring, Numeric, Spec


class _Strict(dg.Model):
    model_config = ConfigDict(extra="forbid")


class Column(_Strict):
    """A contract column: its type, allowed range or values, and whether it may be missing."""

    type: Literal["integer", "float", "category"]
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    nullable: bool = False


class Label(_Strict):
    """The label column: classification its classes (and the scored one, binary), regression an optional range."""

    column: str
    classes: list[int | str] | None = None
    positive: int | str | None = None
    min: float | None = None
    max: float | None = None


class Sensitive(_Strict):
    """A column used only to judge fairness, never as an input."""

    column: str
    values: list[str]


class Data(_Strict):
    """The data contract of the landed files."""

    entity: str
    timestamp: str
    label: Label
    columns: dict[str, Column]
    sensitive: Sensitive | None = None
    landing: str | None = None
    max_bad_row_share: float = 0.05


class DerivedFeature(_Strict):
    op: Literal["ratio", "log1p", "product", "difference"]
    inputs: list[str]


class Features(_Strict):
    """Derived features (row-wise ops on contract columns) and/or a user's function (`package.module:function`)."""

    derived: dict[str, DerivedFeature] = Field(default_factory=dict)
    function: str = ""
    function_columns: list[str] = Field(default_factory=list)


class Training(_Strict):
    """The estimator (a built-in name, a class by dotted path, or a factory `package.module:function`) with its
    params, the seed and the holdout. (`model` is a name Dagster's `Resolvable` reserves.)"""

    estimator: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    holdout_days: int = 2


class UserMetric(_Strict):
    name: str
    function: str
    greater_is_better: bool = True


class GateThresholds(_Strict):
    """Overrides of the task's default gate thresholds, metric by metric."""

    decision_threshold: float = 0.3
    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    max_relative_regression: dict[str, float] = Field(default_factory=dict)
    fairness_bounds: dict[str, float] = Field(default_factory=dict)
    min_slice_rows: int = 100
    min_calibration_rows: int = 300


_MONITORING = Monitoring()


class MonitoringPolicy(_Strict):
    """Drift, live performance, retraining triggers and automatic rollback (see `mlplatform.specs.Monitoring`)."""

    drift_warn_share: float = _MONITORING.drift_warn_share
    drift_error_share: float = _MONITORING.drift_error_share
    min_drift_rows: int = _MONITORING.min_drift_rows
    label_window_days: int = _MONITORING.label_window_days
    min_label_rows: int = _MONITORING.min_label_rows
    label_lookback_days: int = _MONITORING.label_lookback_days
    retrain_after_drifted_batches: int = _MONITORING.retrain_after_drifted_batches
    retrain_on_severity: Literal["warn", "error"] = _MONITORING.retrain_on_severity
    rollback_metric: str = _MONITORING.rollback_metric
    rollback_tolerance: float = _MONITORING.rollback_tolerance
    rollback_relative_tolerance: float = _MONITORING.rollback_relative_tolerance
    rollback_lookback_days: int = _MONITORING.rollback_lookback_days
    max_error_rate: float = _MONITORING.max_error_rate
    min_requests_for_error_rate: int = _MONITORING.min_requests_for_error_rate


class SpecError(ValueError):
    """A pipeline's attributes do not make a valid spec; the message names the file, line and field."""


class _FieldError(ValueError):
    """A check of the component's own, on the field it names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dg.scaffold_with(PipelineScaffolder)
@dataclass
class MLPipeline(dg.Component, dg.Resolvable):
    """One ML pipeline (data contract, features, model, metrics, gates) from a project's `defs.yaml`."""

    name: str
    data: Data
    task: Literal["binary", "multiclass", "regression"] = "binary"
    description: str = ""
    intended_use: str = ""
    features: Features | None = None
    training: Training | None = None
    metrics: list[UserMetric] | None = None
    gates: GateThresholds | None = None
    monitoring: MonitoringPolicy | None = None
    promotion: Literal["manual", "automatic"] | None = None  # default: the project's (MLPLATFORM_PROMOTION)
    retraining: Literal["on_new_data", "on_trigger"] | None = None  # default: the project's (MLPLATFORM_RETRAINING)

    def spec(self, source: Path | None = None) -> Spec:
        """The platform's spec; a spec-level problem raises `SpecError` naming `source`'s line and the field."""
        try:
            return self._spec()
        except ValueError as err:
            field = err.field if isinstance(err, _FieldError) else _field_of(str(err), self)
            where = _line_of(source, field) if source is not None else None
            prefix = f"{source}:{where} " if where else (f"{source} " if source else "")
            raise SpecError(f"{prefix}{field}: {err}") from err

    def _spec(self) -> Spec:
        data, features = self.data, self.features or Features()
        if not data.columns:
            raise _FieldError("data.columns", "empty: give each column of the landed files with its type")
        model, gates = self.training or Training(), self.gates or GateThresholds()
        _check_references(model, features, self.metrics or [])
        numeric = tuple(Numeric(name, _whole(c.min), _whole(c.max), integer=c.type == "integer", nullable=c.nullable)
                        for name, c in data.columns.items() if c.type != "category")
        categorical = []
        for name, c in data.columns.items():
            if c.type == "category":
                if not c.values:
                    raise _FieldError(f"data.columns.{name}.values",
                                      f"column {name!r} is a category without values: give its non-empty list")
                categorical.append(Categorical(name, tuple(c.values), c.nullable))
        label = data.label
        if self.task == "regression":
            if label.classes is not None or label.positive is not None:
                raise _FieldError("data.label.classes", "a regression label has no classes (give min/max instead)")
            labels: dict[str, Any] = {"target_min": _whole(label.min), "target_max": _whole(label.max)}
        else:
            if not label.classes:
                raise _FieldError("data.label.classes", f"a {self.task} label needs its classes")
            labels = {"classes": tuple(label.classes)}
            if self.task == "binary":
                labels["positive_class"] = label.positive if label.positive is not None else label.classes[-1]
        return Spec(
            name=self.name, task=self.task, description=self.description, intended_use=self.intended_use,
            entity=data.entity, timestamp=data.timestamp, label=label.column, numeric=numeric,
            categorical=tuple(categorical),
            sensitive=Categorical(data.sensitive.column, tuple(data.sensitive.values)) if data.sensitive else None,
            derived=tuple(Derived(name, d.op, tuple(d.inputs)) for name, d in features.derived.items()),
            features_function=features.function, function_features=tuple(features.function_columns),
            landing=data.landing, max_bad_row_share=data.max_bad_row_share,
            estimator=model.estimator, estimator_params=tuple(model.params.items()), seed=model.seed,
            holdout_days=model.holdout_days,
            metrics=tuple(Metric(m.name, m.function, m.greater_is_better) for m in self.metrics or []),
            gates=Gates(decision_threshold=gates.decision_threshold, floors=tuple(gates.floors.items()),
                        ceilings=tuple(gates.ceilings.items()), max_regression=tuple(gates.max_regression.items()),
                        max_relative_regression=tuple(gates.max_relative_regression.items()),
                        fairness_bounds=tuple(gates.fairness_bounds.items()), min_slice_rows=gates.min_slice_rows,
                        min_calibration_rows=gates.min_calibration_rows),
            monitoring=Monitoring(**(self.monitoring or MonitoringPolicy()).model_dump()),
            promotion=self.promotion or "", retraining=self.retraining or "", **labels)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from mlplatform.definitions import pipeline_definitions
        from mlplatform.settings import get_settings

        return pipeline_definitions(self.spec(Path(context.path) / "defs.yaml"), get_settings())


def _check_references(training: Training, features: Features, metrics: list[UserMetric]) -> None:
    """Every estimator, factory and function the pipeline names exists, found in its source without importing it
    (a typo is refused when the project loads, not when a run reaches the model)."""
    from mlplatform.code_versions import reference_problem
    from mlplatform.lib.training.estimators import BUILT_IN

    if training.estimator and "." not in training.estimator and ":" not in training.estimator:
        if training.estimator not in BUILT_IN:
            raise _FieldError("training.estimator", f"{training.estimator!r} is not a built-in estimator "
                              f"({', '.join(BUILT_IN)}), a class by dotted path or a factory package.module:function")
    elif training.estimator and (problem := reference_problem(training.estimator)):
        raise _FieldError("training.estimator", problem)
    if features.function and (problem := reference_problem(features.function)):
        raise _FieldError("features.function", problem)
    for metric in metrics:
        if problem := reference_problem(metric.function):
            raise _FieldError("metrics", f"metric {metric.name!r}: {problem}")


def _whole(value: float | None) -> float | int | None:
    """A bound as written: `max: 100` stays 100 (messages say `<= 100`), `max: 0.5` stays 0.5."""
    return int(value) if value is not None and value.is_integer() else value


# A message of `Spec`'s own checks → the YAML field it is about (the first whose words it contains), for the line.
_FIELDS = (("derived feature", "features.derived"), ("features_function", "features.function"),
           ("estimator", "training.estimator"), ("positive", "data.label.positive"),
           ("classes", "data.label.classes"), ("gate", "gates"), ("column names used twice", "data.columns"),
           ("spec name", "name"), ("task '", "task"), ("promotion", "promotion"), ("retraining", "retraining"),
           ("rollback_metric", "monitoring.rollback_metric"), ("drift", "monitoring"), ("metric '", "metrics"))


def _field_of(message: str, pipeline: MLPipeline) -> str:
    for words, field in _FIELDS:
        if words in message:
            if field == "features.derived":
                named = [n for n in (pipeline.features.derived if pipeline.features else {}) if repr(n) in message]
                return f"features.derived.{named[0]}.inputs" if named else field
            return field
    return "attributes"


def _line_of(source: Path, field: str) -> int | None:
    """The line of `attributes.<field>` in a defs.yaml (1-based), or of its nearest parent that is there."""
    import yaml

    try:
        node = yaml.compose(source.read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in ["attributes", *field.split(".")]:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def load_spec(path: Path) -> Spec:
    """The spec a pipeline's `defs.yaml` declares, without loading its project (benchmarks, tools)."""
    import yaml

    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, dict) or not isinstance(document.get("attributes"), dict):
        raise SpecError(f"{path}: expected `type: mlplatform.components.MLPipeline` and `attributes:`")
    return MLPipeline.resolve_from_dict(document["attributes"]).spec(Path(path))
