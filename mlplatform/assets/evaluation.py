"""Evaluation layer: the candidate against the champion, fairness, explainability, and the blocking gates."""

from collections.abc import Iterator

import dagster as dg
from pydantic import create_model

from mlplatform.assets._shared import DataFrame, key, rebuild_on_change, spec_config
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.orchestration.freshness import unchanged
from mlplatform.resources import Artifacts, MlflowTracking
from mlplatform.specs import Spec

GROUP = "evaluation"
GATE_DESCRIPTIONS = {
    "floors": "Headline metrics at least their floors (calibration at most its ceiling)",
    "no_regression": "No metric drops against the champion beyond its tolerance, on the same holdout rows",
    "fairness": "Disparities between sensitive slices within their bounds",
    "prediction_contract": "One output per row (probabilities or a value); the registered model answers as trained",
}


class EvaluationConfig(dg.Config):
    """Gate thresholds as run config (each spec's class defaults them to its `Gates`: `evaluation_config`)."""

    decision_threshold: float
    floors: dict[str, float]
    ceilings: dict[str, float]
    max_regression: dict[str, float]
    max_relative_regression: dict[str, float]
    fairness_bounds: dict[str, float]
    min_slice_rows: int
    min_calibration_rows: int


def evaluation_config(spec: Spec) -> type[EvaluationConfig]:
    """Gate thresholds as run config, defaulting to the spec's `Gates`."""
    g, t = spec.gates, spec.gate_thresholds
    return create_model(f"{spec.name.title()}EvaluationConfig", __base__=EvaluationConfig,
                        decision_threshold=(float, g.decision_threshold), floors=(dict[str, float], t["floors"]),
                        ceilings=(dict[str, float], t["ceilings"]),
                        max_regression=(dict[str, float], t["max_regression"]),
                        max_relative_regression=(dict[str, float], t["max_relative_regression"]),
                        fairness_bounds=(dict[str, float], t["fairness_bounds"]),
                        min_slice_rows=(int, g.min_slice_rows),
                        min_calibration_rows=(int, g.min_calibration_rows))


SEVERITY = {True: dg.AssetCheckSeverity.ERROR, False: dg.AssetCheckSeverity.WARN}  # by whether the gate judged
EVALUATION_CODE = (*(f"mlplatform.lib.evaluation.{m}" for m in ("metrics", "gates", "assessment", "report")),
                   "mlplatform.lib.predictions", "mlplatform.lib.explanations")


def build(spec: Spec, sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    eval_key = key(spec, "evaluation")
    checks = [dg.AssetCheckSpec(name, asset=eval_key, blocking=True, description=text)
              for name, text in GATE_DESCRIPTIONS.items()]

    @dg.asset(key=eval_key, ins={"training_set": dg.AssetIn(key(spec, "training_set")),
                                 "model": dg.AssetIn(key(spec, "model"))},
              group_name=GROUP, kinds={"scikitlearn", "mlflow"},
              code_version=sources.version(*EVALUATION_CODE,
                                           *(m.function for m in spec.metrics),
                                           config=(spec.task, spec.classes, spec.positive_class, spec.gates)),
              check_specs=checks, automation_condition=rebuild_on_change(partitioned=False), output_required=False)
    @spec_config(evaluation_config(spec))
    def evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, training_set: DataFrame,
                   model: DataFrame, mlflow: MlflowTracking, artifacts: Artifacts) -> Iterator:
        """Holdout metrics of the challenger and the champion, slices, importance, report, model card and gates."""
        if unchanged(context):
            return
        from mlplatform.lib.evaluation.assessment import assess
        from mlplatform.lib.evaluation.gates import Thresholds
        from mlplatform.lib.training import tracking

        client, reg = mlflow.client(), model.registered
        champion = tracking.load_champion(client, mlflow.tracking_uri, spec)
        thresholds = Thresholds(config.floors, config.ceilings, config.max_regression,
                                config.max_relative_regression, config.fairness_bounds)
        result = assess(spec, model, training_set, champion.model if champion else None,
                        champion.version if champion else None,
                        tracking.registered_predictor(mlflow.tracking_uri, reg.model_uri), thresholds,
                        config.decision_threshold, config.min_slice_rows, artifacts.reports(spec, reg.version),
                        config.min_calibration_rows)
        tracking.record_evaluation(client, reg, result.metrics, {g.name: g.passed for g in result.gates},
                                   result.files["report_md"].parent)
        yield dg.Output(result, data_version=dg.DataVersion(result.version_hash()), metadata={
            **{k: float(v) for k, v in result.metrics.items()}, "model_version": f"{reg.name} v{reg.version}",
            "champion": f"v{result.champion}" if result.champion else "none", "gates_passed": result.passed,
            "summary": dg.MetadataValue.md(result.summary_md),
            "model_card": dg.MetadataValue.md(result.files["model_card"].read_text()),
            "report": dg.MetadataValue.path(str(result.files["report_html"])), "mlflow_run_id": reg.run_id})
        for gate in result.gates:  # a gate with too little data to judge is a warning: it neither blocks nor passes
            yield dg.AssetCheckResult(check_name=gate.name, passed=gate.passed and gate.judged,
                                      severity=SEVERITY[gate.judged],
                                      description=gate.description,
                                      metadata={"numbers": dg.MetadataValue.json(gate.numbers)})

    return [evaluation]
