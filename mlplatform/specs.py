"""Model and dataset specs: the one place a user describes their data, features and thresholds.

A second model is a second `Spec` added to `SPECS`, not new asset code. Kept free of heavy imports so the
code location loads fast.
"""

from dataclasses import dataclass
from typing import Literal

DerivedOp = Literal["ratio", "log1p", "product", "difference"]


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


Thresholds = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Gates:
    """Thresholds of the blocking promotion gates (each one is run config defaulting to these values).

    Metric names are those of `lib/evaluate.py`: roc_auc, pr_auc, f1, precision, recall, accuracy (higher is
    better) and log_loss, brier, expected_calibration_error (lower is better).
    """

    decision_threshold: float = 0.3
    floors: Thresholds = (("roc_auc", 0.65), ("pr_auc", 0.25))
    ceilings: Thresholds = (("brier", 0.2), ("expected_calibration_error", 0.08))
    # Allowed drop against the champion on the same holdout: absolute, and relative to the champion's value.
    max_regression: Thresholds = (("roc_auc", 0.01), ("pr_auc", 0.02))
    max_relative_regression: Thresholds = (("roc_auc", 0.02),)
    fairness_bounds: Thresholds = (("demographic_parity_difference", 0.25), ("equalized_odds_difference", 0.3))
    # Slices with fewer holdout rows are reported but left out of the disparity metrics (too noisy to judge).
    min_slice_rows: int = 100


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
    rollback_metric: str = "roc_auc"
    rollback_tolerance: float = 0.02
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
    categorical: tuple[Categorical, ...] = ()
    sensitive: Categorical | None = None
    derived: tuple[Derived, ...] = ()
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
    estimator: str = "logistic_regression"
    regularization_c: float = 1.0
    max_iter: int = 1000
    seed: int = 42
    holdout_days: int = 2
    registered_model: str = ""
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    description: str = ""
    intended_use: str = ""

    def __post_init__(self) -> None:
        names = [self.entity, self.timestamp, self.label, *self.contract_feature_names]
        if self.sensitive is not None:
            names.append(self.sensitive.name)
        names += [d.name for d in self.derived]
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

    @property
    def contract_feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Model inputs served by Feast: contract features then derived ones."""
        return self.contract_feature_names + [d.name for d in self.derived]

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


CREDIT = Spec(
    name="credit",
    description="Credit default: will a customer miss payments on a new loan within 12 months?",
    intended_use=("Ranks loan applications by default risk to route them to manual review. Not for automatic "
                  "rejection, and not for applicants outside the population the training data covers."),
    entity="customer_id",
    timestamp="event_timestamp",
    label="default",
    numeric=(
        Numeric("age", 18, 100, integer=True),
        Numeric("income", 0, 10_000_000),
        Numeric("loan_amount", 100, 1_000_000),
        Numeric("loan_term_months", 6, 120, integer=True),
        Numeric("credit_utilization", 0, 2),
        Numeric("num_late_payments", 0, 100, integer=True),
        Numeric("employment_years", 0, 70),
        Numeric("num_open_accounts", 0, 100, integer=True),
    ),
    categorical=(
        Categorical("home_ownership", ("rent", "own", "mortgage", "other")),
        Categorical("purpose", ("debt_consolidation", "car", "home_improvement", "education", "medical", "other")),
    ),
    sensitive=Categorical("age_band", ("18-25", "26-40", "41-60", "60+")),
    derived=(
        Derived("loan_to_income", "ratio", ("loan_amount", "income")),
        Derived("monthly_payment", "ratio", ("loan_amount", "loan_term_months")),
        Derived("log_income", "log1p", ("income",)),
    ),
)

SPECS: tuple[Spec, ...] = (CREDIT,)
