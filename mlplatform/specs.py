"""The spec of a pipeline: its data contract, features, model, metrics and gates, as the platform's layers read it.

Users declare it in YAML (`mlplatform.components.MLPipeline` builds a `Spec` from a project's `defs.yaml`); the
platform holds no pipeline of its own. Kept free of heavy imports so the code location loads fast.
"""

from dataclasses import dataclass
from typing import Any, Literal

DerivedOp = Literal["ratio", "log1p", "product", "difference"]
# A missing value of a nullable categorical feature is this category of its own, in training and in serving alike.
MISSING_CATEGORY = "(missing)"


@dataclass(frozen=True)
class Numeric:
    """A numeric column of the landed data, with its allowed closed range."""

    name: str
    min: float | None = None
    max: float | None = None
    integer: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class Categorical:
    """A string column whose values must come from a fixed set."""

    name: str
    categories: tuple[str, ...]
    nullable: bool = False


@dataclass(frozen=True)
class Derived:
    """An engineered feature computed row-wise from contract columns (see `lib/features.py`)."""

    name: str
    op: DerivedOp
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Metric:
    """A metric of the user's: `function` (`package.module:function`) takes the holdout's true labels and the model's
    output (binary: the positive class's probability; multiclass: a probability per class, in the spec's class order;
    regression: the values) and returns a number. Usable in gates like the task's own metrics."""

    name: str
    function: str
    greater_is_better: bool = True


Thresholds = tuple[tuple[str, float], ...]
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
ClassValue = int | str

# Each task's default gate thresholds; a spec's `Gates` (and run config) override them metric by metric.
TASK_GATES: dict[str, dict[str, dict[str, float]]] = {
    "binary": {
        "floors": {"roc_auc": 0.65, "pr_auc": 0.25},
        "ceilings": {"brier": 0.2, "expected_calibration_error": 0.08},
        "max_regression": {"roc_auc": 0.01, "pr_auc": 0.02},
        "max_relative_regression": {"roc_auc": 0.02},
        "fairness_bounds": {"demographic_parity_difference": 0.25, "equalized_odds_difference": 0.3},
    },
    "multiclass": {
        "floors": {"f1_macro": 0.5},
        "ceilings": {},
        "max_regression": {"f1_macro": 0.02, "accuracy": 0.02},
        "max_relative_regression": {},
        "fairness_bounds": {"accuracy_gap": 0.2, "recall_gap": 0.25},
    },
    "regression": {
        "floors": {"r2": 0.1},
        "ceilings": {},
        "max_regression": {},
        "max_relative_regression": {"rmse": 0.05, "mae": 0.05},
        "fairness_bounds": {"relative_mae_gap": 0.5},
    },
}
# Each task's holdout metrics: +1 where higher is better, -1 where lower is (multiclass adds recall_<class>).
TASK_METRICS: dict[str, dict[str, int]] = {
    "binary": {"roc_auc": 1, "pr_auc": 1, "f1": 1, "precision": 1, "recall": 1, "accuracy": 1, "log_loss": -1,
               "brier": -1, "expected_calibration_error": -1},
    "multiclass": {"accuracy": 1, "f1_macro": 1, "f1_weighted": 1, "roc_auc_ovr": 1, "log_loss": -1},
    "regression": {"rmse": -1, "mae": -1, "r2": 1},
}
# Each task's disparity metrics over the sensitive slices (lower is fairer).
TASK_FAIRNESS: dict[str, tuple[str, ...]] = {
    "binary": ("demographic_parity_difference", "equalized_odds_difference"),
    "multiclass": ("accuracy_gap", "recall_gap"),
    "regression": ("mae_gap", "relative_mae_gap"),
}
# Each task's headline metric: logged with a training run, the one permutation importance worsens, and the live
# metric a new champion is compared on before it is rolled back (unless `Monitoring.rollback_metric` names another).
TASK_HEADLINE = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
GATE_KINDS = ("floors", "ceilings", "max_regression", "max_relative_regression", "fairness_bounds")


@dataclass(frozen=True)
class Gates:
    """Thresholds of the blocking promotion gates, as overrides of the task's defaults (`TASK_GATES`): a spec that
    names one floor keeps every other default. Each is run config defaulting to the merged values.

    Metric names are those of `lib/evaluation/metrics.py` for the spec's task.
    """

    decision_threshold: float = 0.3  # binary: a row is labelled positive from this probability on
    floors: Thresholds = ()
    ceilings: Thresholds = ()
    # Allowed drop against the champion on the same holdout: absolute, and relative to the champion's value.
    max_regression: Thresholds = ()
    max_relative_regression: Thresholds = ()
    fairness_bounds: Thresholds = ()
    # Slices with fewer holdout rows are reported but left out of the disparity metrics (too noisy to judge).
    min_slice_rows: int = 100
    # Binary: a holdout smaller than this does not judge the calibration error (10 bins of a few rows are noise).
    min_calibration_rows: int = 300

    def resolved(self, task: str) -> dict[str, dict[str, float]]:
        """Each kind of threshold: the task's defaults, overridden by this spec's values."""
        return {kind: {**TASK_GATES[task][kind], **dict(getattr(self, kind))} for kind in GATE_KINDS}


@dataclass(frozen=True)
class Monitoring:
    """What counts as drift in landed data and in production traffic."""

    # Severity of a batch's drift by the share of monitored features that drifted.
    drift_warn_share: float = 0.2
    drift_error_share: float = 0.3
    # Batches (a landed file, a day of traffic) smaller than this are reported but not tested.
    min_drift_rows: int = 30
    # Live performance: a served row's label is its entity's latest label row at most this old when it was served;
    # a version's day is judged against the gate floors and ceilings from this many labelled rows on.
    label_window_days: int = 30
    min_label_rows: int = 50
    # Labels landing up to this many days after a served day re-score that day.
    label_lookback_days: int = 7
    # Retraining: when this many consecutive judged batches (landed files, or days of traffic) drifted at this
    # severity or worse against one reference, or production's latest judged day is below the gate floors.
    retrain_after_drifted_batches: int = 3
    retrain_on_severity: Literal["warn", "error"] = "error"
    # Automatic rollback of a newly promoted champion: its live metric (weighted by labelled rows, over the last
    # `rollback_lookback_days`) below the previous champion's by more than the tolerance, or its error rate on
    # prediction requests above the maximum.
    rollback_metric: str = ""  # default: the task's headline metric (`TASK_HEADLINE`)
    rollback_tolerance: float = 0.02  # in the metric's own units (a score in [0, 1]: ROC AUC, accuracy)
    # An error metric (lower is better: RMSE, MAE, log loss) has no fixed scale: it may also worsen by this share
    # of the previous champion's value (RMSE 50: 2.5) before a rollback.
    rollback_relative_tolerance: float = 0.05
    rollback_lookback_days: int = 14
    max_error_rate: float = 0.05
    min_requests_for_error_rate: int = 100


@dataclass(frozen=True)
class Spec:
    """Everything the platform needs to know about one dataset and the model trained on it."""

    name: str
    entity: str
    timestamp: str
    label: str
    numeric: tuple[Numeric, ...]
    # What the model predicts from the label column: one of two classes (`positive_class` is the one scored),
    # one of several classes, or a number (within `target_min`..`target_max` when given).
    task: Task = "binary"
    classes: tuple[ClassValue, ...] = (0, 1)
    positive_class: ClassValue = 1
    target_min: float | None = None
    target_max: float | None = None
    categorical: tuple[Categorical, ...] = ()
    sensitive: Categorical | None = None
    derived: tuple[Derived, ...] = ()
    # The user's own features: `features_function` (`package.module:function`) takes the contract's feature columns
    # (a DataFrame: numbers as float64, categories as strings) and returns a DataFrame of exactly the numeric columns
    # named in `function_features`, row for row. Training and serving both call it (`lib/features/featurize.py`).
    features_function: str = ""
    function_features: tuple[str, ...] = ()
    # Folder of landed files; a relative path is taken under $MLPLATFORM_HOME/landing.
    landing: str | None = None
    file_formats: tuple[str, ...] = ("csv", "parquet")
    # Bounded work per landed file: a larger one is refused in seconds, naming the limit, before it is parsed.
    max_file_bytes: int = 2_000_000_000
    max_columns: int = 1_000
    max_rows: int = 20_000_000
    max_bad_row_share: float = 0.05
    feature_service_version: int = 1
    parity_sample_size: int = 200
    # Training: the holdout is the latest `holdout_days` of label time; every random choice derives from `seed`.
    # `estimator`: a built-in name (`lib/training/estimators.py`; "" is the task's default), a scikit-learn-compatible
    # class by dotted path (`sklearn.ensemble.RandomForestClassifier`) built with `estimator_params`, or a factory
    # `package.module:function` returning an estimator or a whole Pipeline.
    estimator: str = ""
    estimator_params: tuple[tuple[str, Any], ...] = ()
    metrics: tuple[Metric, ...] = ()  # the user's own metrics, computed and gated next to the task's
    regularization_c: float = 1.0
    max_iter: int = 1000
    seed: int = 42
    holdout_days: int = 2
    registered_model: str = ""
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    description: str = ""
    intended_use: str = ""
    # Policies of this pipeline; "" follows the project's (MLPLATFORM_PROMOTION, MLPLATFORM_RETRAINING).
    promotion: Literal["", "manual", "automatic"] = ""
    retraining: Literal["", "on_new_data", "on_trigger"] = ""

    def __post_init__(self) -> None:
        if self.promotion not in ("", "manual", "automatic"):
            raise ValueError(f"spec {self.name!r}: promotion {self.promotion!r} is not manual or automatic")
        if self.retraining not in ("", "on_new_data", "on_trigger"):
            raise ValueError(f"spec {self.name!r}: retraining {self.retraining!r} is not on_new_data or on_trigger")
        names = [self.entity, self.timestamp, self.label, *self.contract_feature_names]
        if self.sensitive is not None:
            names.append(self.sensitive.name)
        names += [d.name for d in self.derived] + list(self.function_features)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"spec {self.name!r}: column names used twice: {duplicated}")
        known = set(self.contract_feature_names)
        for d in self.derived:
            missing = [i for i in d.inputs if i not in known]
            if missing:
                raise ValueError(f"spec {self.name!r}: derived feature {d.name!r} uses unknown columns {missing}")
        if not self.name.isidentifier():
            raise ValueError(f"spec name {self.name!r} must be a Python identifier (it prefixes asset keys)")
        if bool(self.features_function) != bool(self.function_features):
            raise ValueError(f"spec {self.name!r}: features_function and function_features go together (the "
                             "function's columns must be named)")
        if self.features_function and ":" not in self.features_function:
            raise ValueError(f"spec {self.name!r}: features_function {self.features_function!r} is not "
                             "package.module:function")
        self._check_task()

    def _check_task(self) -> None:
        where = f"spec {self.name!r}"
        if self.task not in TASKS:
            raise ValueError(f"{where}: task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.task != "regression":
            kinds = {type(c) for c in self.classes}
            if len(set(self.classes)) != len(self.classes) or not kinds <= {int, str} or len(kinds) != 1:
                raise ValueError(f"{where}: classes must be distinct integers or distinct strings, got {self.classes}")
            wanted = 2 if self.task == "binary" else 3
            if (len(self.classes) != 2) if self.task == "binary" else (len(self.classes) < 3):
                raise ValueError(f"{where}: a {self.task} task needs {'exactly' if wanted == 2 else 'at least'} "
                                 f"{wanted} classes, got {len(self.classes)}: {list(self.classes)}")
        if self.task == "binary" and self.positive_class not in self.classes:
            raise ValueError(f"{where}: positive_class {self.positive_class!r} is not one of the classes "
                             f"{list(self.classes)}")
        for metric in self.metrics:
            module, sep, function = metric.function.partition(":")
            if not sep or not module or not function.isidentifier():
                raise ValueError(f"{where}: metric {metric.name!r}: function {metric.function!r} is not "
                                 "package.module:function")
            if metric.name in TASK_METRICS[self.task]:
                raise ValueError(f"{where}: metric {metric.name!r} is already a {self.task} metric")
        for kind in GATE_KINDS:
            known = TASK_FAIRNESS[self.task] if kind == "fairness_bounds" else tuple(self.metric_directions)
            unknown = sorted({name for name, _ in getattr(self.gates, kind)} - set(known))
            if unknown:
                raise ValueError(f"{where}: gates.{kind} names unknown {self.task} metric(s) {unknown}; "
                                 f"known: {', '.join(known)}")
        if self.monitoring.rollback_metric and self.monitoring.rollback_metric not in self.metric_directions:
            raise ValueError(f"{where}: rollback_metric {self.monitoring.rollback_metric!r} is not a {self.task} "
                             f"metric; known: {', '.join(self.metric_directions)}")

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def label_is_text(self) -> bool:
        return self.is_classification and isinstance(self.classes[0], str)

    @property
    def negative_class(self) -> ClassValue:
        """Binary: the class that is not the positive one."""
        return next(c for c in self.classes if c != self.positive_class)

    @property
    def metric_directions(self) -> dict[str, int]:
        """Every holdout metric of the task: +1 where higher is better, -1 where lower is."""
        directions = dict(TASK_METRICS[self.task])
        if self.task == "multiclass":
            directions |= {f"recall_{c}": 1 for c in self.classes}
        return directions | {m.name: 1 if m.greater_is_better else -1 for m in self.metrics}

    @property
    def estimator_name(self) -> str:
        """The estimator, with "" resolved to the task's default."""
        return self.estimator or ("ridge" if self.task == "regression" else "logistic_regression")

    @property
    def gate_thresholds(self) -> dict[str, dict[str, float]]:
        """Every gate threshold: the task's defaults merged with the spec's overrides."""
        return self.gates.resolved(self.task)

    @property
    def rollback_metric(self) -> str:
        return self.monitoring.rollback_metric or TASK_HEADLINE[self.task]

    @property
    def contract_feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Model inputs served by Feast: contract features, derived ones, then the user function's."""
        return self.contract_feature_names + [d.name for d in self.derived] + list(self.function_features)

    def derived_nullable(self, feature: Derived) -> bool:
        """A derived feature can be missing when one of its inputs can."""
        nullable = {c.name for c in self.numeric if c.nullable}
        return any(name in nullable for name in feature.inputs)

    @property
    def categorical_feature_names(self) -> list[str]:
        return [c.name for c in self.categorical]

    @property
    def contract_columns(self) -> list[str]:
        cols = [self.entity, self.timestamp, *self.contract_feature_names]
        if self.sensitive is not None:
            cols.append(self.sensitive.name)
        return [*cols, self.label]

    @property
    def model_name(self) -> str:
        """The registered model in the MLflow Model Registry."""
        return self.registered_model or f"{self.name}_model"

    @property
    def feature_service_name(self) -> str:
        return f"{self.name}_v{self.feature_service_version}"


def spec_to_json(spec: Spec) -> str:
    """The spec as JSON (it travels inside a Bento and to the packaging process)."""
    import json
    from dataclasses import asdict

    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(text: str) -> Spec:
    """A spec back from `spec_to_json`."""
    import json

    raw = json.loads(text)

    def pairs(values: list) -> tuple:
        return tuple(tuple(v) for v in values)

    def categorical(c: dict) -> Categorical:
        return Categorical(c["name"], tuple(c["categories"]), c["nullable"])

    gates = raw.pop("gates")
    for kind in GATE_KINDS:
        gates[kind] = pairs(gates[kind])
    return Spec(**{
        **raw,
        "numeric": tuple(Numeric(**c) for c in raw["numeric"]),
        "categorical": tuple(categorical(c) for c in raw["categorical"]),
        "sensitive": categorical(raw["sensitive"]) if raw["sensitive"] else None,
        "derived": tuple(Derived(d["name"], d["op"], tuple(d["inputs"])) for d in raw["derived"]),
        "classes": tuple(raw["classes"]), "file_formats": tuple(raw["file_formats"]),
        "function_features": tuple(raw["function_features"]),
        "estimator_params": pairs(raw["estimator_params"]),
        "gates": Gates(**gates), "monitoring": Monitoring(**raw["monitoring"]),
        "metrics": tuple(Metric(**m) for m in raw["metrics"]),
    })
