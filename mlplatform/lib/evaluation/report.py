"""The evaluation report (Markdown + self-contained HTML with plots) and the model card of a candidate."""

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.lib import explanations
from mlplatform.lib.evaluation.gates import GateResult
from mlplatform.lib.evaluation.metrics import Evaluation
from mlplatform.specs import TASK_HEADLINE

PLOTS = ("roc_curve", "calibration_curve", "residuals", "feature_importance", "shap_summary", "slices")
UNITS = {"probability": "probability", "log_odds": "log-odds", "value": "predicted value"}


@dataclass(frozen=True)
class CardFacts:
    """What the model card says about a candidate besides its evaluation: identity, data and lineage."""

    model: str
    version: str
    description: str
    intended_use: str
    estimator: str
    params: dict[str, object]
    feature_service: str
    features: list[str]
    sensitive: str | None
    partitions: list[str]
    train_rows: int
    training_set_version: str
    champion: str | None
    dagster_run_id: str
    mlflow_run_id: str
    git_commit: str
    lock_hash: str
    task: str = "binary"


def _figure(path: Path, draw: Callable[[Any], None], size: tuple[float, float] = (5, 4)) -> Path:
    """Draw one plot into a PNG (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def _plots(evaluation: Evaluation, folder: Path) -> dict[str, Path]:
    models = [m for m in (evaluation.candidate, evaluation.champion) if m is not None]

    def roc(ax: Any) -> None:
        for m in models:
            ax.plot(*m.roc, label=f"{m.name} (AUC {m.metrics['roc_auc']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
        ax.legend(loc="lower right")

    def calibration(ax: Any) -> None:
        for m in models:
            bins = pd.DataFrame(m.calibration)
            ax.plot(bins["predicted"], bins["observed"], "o-",
                    label=f"{m.name} (ECE {m.metrics['expected_calibration_error']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (10 bins)")
        ax.legend(loc="upper left")

    def residuals(ax: Any) -> None:
        for m in models:
            points = pd.DataFrame(m.residuals, columns=["predicted", "residual"])
            ax.scatter(points["predicted"], points["residual"], s=6, alpha=0.5,
                       label=f"{m.name} (RMSE {m.metrics['rmse']:.4g})")
        ax.axhline(0, linestyle=":", color="grey")
        ax.set(xlabel="predicted value", ylabel="actual − predicted", title="Residuals (holdout)")
        ax.legend(loc="upper left")

    def importance(ax: Any) -> None:
        imp = evaluation.importance.iloc[::-1]
        ax.barh(imp["feature"], imp["importance"], xerr=imp["importance_std"], color="tab:blue")
        ax.set(xlabel=f"worsening of {TASK_HEADLINE[evaluation.task]} when shuffled",
               title="Permutation importance (holdout)")

    def slices(ax: Any) -> None:
        frame = evaluation.candidate.slices
        shown = [c for c in ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy", "recall",
                             "mae") if c in frame]
        if len(frame) and shown:
            frame[shown].plot.bar(ax=ax, rot=0)
        ax.set(xlabel="", ylabel="value", title="Challenger by slice")

    rows = len(evaluation.importance)
    plots = {**_shap_summary(evaluation, folder),
             "feature_importance": _figure(folder / "feature_importance.png", importance, (5, 0.3 * rows + 1)),
             "slices": _figure(folder / "slices.png", slices, (6, 4))}
    if evaluation.task == "binary":
        plots["roc_curve"] = _figure(folder / "roc_curve.png", roc)
        plots["calibration_curve"] = _figure(folder / "calibration_curve.png", calibration)
    if evaluation.task == "regression":
        plots["residuals"] = _figure(folder / "residuals.png", residuals)
    return plots


def _shap_summary(evaluation: Evaluation, folder: Path) -> dict[str, Path]:
    """SHAP's summary plot of the explained holdout rows: one output a beeswarm (each row's contribution per
    feature, coloured by the feature's value), several outputs (multiclass) mean |contribution| per class."""
    explanation, rows = evaluation.explanation, evaluation.explained
    if explanation is None or rows is None:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shap = explanations.import_shap()
    numeric = rows.apply(lambda c: pd.to_numeric(c, errors="coerce"))  # categories are not coloured
    shown = min(len(explanation.features), 20)
    if len(explanation.outputs) == 1:
        shap.summary_plot(explanation.values[:, :, 0], numeric, max_display=shown, show=False, plot_size=(7, 0.35 *
                                                                                                       shown + 1.5))
    else:
        shap.summary_plot([explanation.values[:, :, j] for j in range(len(explanation.outputs))], numeric,
                          plot_type="bar", class_names=explanation.outputs, max_display=shown, show=False,
                          plot_size=(7, 0.35 * shown + 1.5))
    fig = plt.gcf()
    of = f" of {explanation.outputs[0]}" if evaluation.task == "binary" else ""
    fig.axes[0].set_title(f"SHAP ({explanation.method}): contribution to the {UNITS[explanation.unit]}{of}, "
                          f"{len(rows)} holdout rows", fontsize=10)
    path = folder / "shap_summary.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return {"shap_summary": path}


def shap_sentence(evaluation: Evaluation) -> str:
    explanation = evaluation.explanation
    if explanation is None:
        return f"No SHAP explanation: {evaluation.explanation_problem or 'not computed'}."
    rows = len(explanation.values)
    return (f"SHAP {explanation.method} explainer on {rows} holdout rows (seeded sample): each feature's contribution "
            f"to the {UNITS[explanation.unit]}"
            + (f" of {', '.join(explanation.outputs)}" if evaluation.task != "regression" else "")
            + "; base value + contributions = the model's output for the row. The served `/explain` uses the same "
            "explainer and background rows.")


def top_features_table(evaluation: Evaluation) -> pd.DataFrame:
    if evaluation.explanation is None:
        return pd.DataFrame()
    return explanations.top_features(evaluation.explanation).round(4)


def comparison(evaluation: Evaluation) -> pd.DataFrame:
    """Challenger vs champion, metric by metric (Δ > 0 means the challenger is better)."""
    cand = evaluation.candidate.metrics
    champ = evaluation.champion.metrics if evaluation.champion else {}
    rows = []
    for metric, sign in evaluation.directions.items():
        rows.append({"metric": metric, "challenger": round(cand[metric], 4),
                     "champion": round(champ[metric], 4) if champ else "—",
                     "better by": round(sign * (cand[metric] - champ[metric]), 4) if champ else "—"})
    return pd.DataFrame(rows)


def md_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def gate_table(gates: list[GateResult]) -> pd.DataFrame:
    return pd.DataFrame([{"gate": g.name, "result": ("PASSED" if g.judged else "NOT JUDGED") if g.passed else "FAILED",
                          "detail": g.description} for g in gates])


def slice_table(evaluation: Evaluation) -> pd.DataFrame:
    slices = evaluation.candidate.slices
    if not len(slices):
        return pd.DataFrame()
    return slices.round(4).reset_index(names="slice")


def _sections(evaluation: Evaluation, gates: list[GateResult], facts: CardFacts) -> list[tuple[str, object]]:
    """The report as (heading, table or plot name or text), rendered to Markdown and HTML alike."""
    champ = f"champion v{facts.champion}" if facts.champion else "no champion yet"
    threshold = f", decision threshold {evaluation.threshold}" if evaluation.task == "binary" else ""
    intro = (f"Task: {evaluation.task}. Holdout: {evaluation.holdout_rows} rows ({evaluation.holdout_method}), "
             f"{evaluation.label_summary}{threshold}. Compared with {champ} on the same rows.")
    importance = evaluation.importance.round(4)
    curves: list[tuple[str, object]] = ([("ROC curve", "roc_curve"), ("Calibration", "calibration_curve")]
                                        if evaluation.task == "binary" else
                                        [("Residuals", "residuals")] if evaluation.task == "regression" else [])
    return [("", intro), ("Gates", gate_table(gates)), ("Challenger vs champion", comparison(evaluation)), *curves,
            ("Fairness slices", slice_table(evaluation)), ("", "slices"),
            ("Disparities", pd.DataFrame([evaluation.candidate.fairness]).round(4)),
            ("Feature importance", importance), ("", "feature_importance"),
            ("Explanations (SHAP)", shap_sentence(evaluation)),
            *([("Top features per output", top_features_table(evaluation)), ("", "shap_summary")]
              if evaluation.explanation is not None else [])]


def _markdown(title: str, sections: list[tuple[str, object]]) -> str:
    parts = [f"# {title}"]
    for heading, body in sections:
        if heading:
            parts.append(f"## {heading}")
        if isinstance(body, pd.DataFrame):
            parts.append(md_table(body) if len(body) else "_none_")
        elif body in PLOTS:
            parts.append(f"![{body}]({body}.png)")
        else:
            parts.append(str(body))
    return "\n\n".join(parts) + "\n"


def _html(title: str, sections: list[tuple[str, object]], plots: dict[str, Path]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
             "body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(body, pd.DataFrame):
            parts.append(body.to_html(index=False) if len(body) else "<p><em>none</em></p>")
        elif body in PLOTS:
            data = base64.b64encode(plots[body].read_bytes()).decode()
            parts.append(f"<img alt='{body}' src='data:image/png;base64,{data}'>")
        else:
            parts.append(f"<p>{html.escape(str(body))}</p>")
    return "\n".join(parts) + "</body></html>\n"


def model_card(evaluation: Evaluation, gates: list[GateResult], facts: CardFacts) -> str:
    """The candidate's model card (Markdown)."""
    passed = all(g.passed for g in gates)
    params = ", ".join(f"{k}={v}" for k, v in facts.params.items())
    span = f"{facts.partitions[0]} … {facts.partitions[-1]}" if facts.partitions else "none"
    lines = [
        f"# Model card: {facts.model} v{facts.version}", "",
        f"Status: **{'challenger, every gate passed' if passed else 'challenger, blocked by a failed gate'}**", "",
        "## Intended use", facts.description, "", facts.intended_use or "Not stated in the spec.", "",
        "## Model", f"Task: {facts.task}. Pipeline: {facts.estimator} ({params}).", "",
        "## Data",
        f"- Partitions: {len(facts.partitions)} ({span})",
        f"- Rows: {facts.train_rows} training, {evaluation.holdout_rows} holdout ({evaluation.holdout_method}; "
        f"{evaluation.label_summary})",
        f"- Training set data version: `{facts.training_set_version}`", "",
        "## Features", f"Feature service `{facts.feature_service}`: {', '.join(facts.features)}.",
        f"Sensitive attribute (used only to evaluate fairness, never as an input): {facts.sensitive or 'none'}.", "",
        "## Metrics (holdout)", md_table(comparison(evaluation)), "",
        "## Slices", md_table(slice_table(evaluation)) if len(evaluation.candidate.slices) else "none", "",
        "## Explanations", shap_sentence(evaluation), "",
        *([md_table(top_features_table(evaluation)), ""] if evaluation.explanation is not None else []),
        "## Gates", md_table(gate_table(gates)), "",
        "## Lineage",
        f"- Dagster run: `{facts.dagster_run_id}`", f"- MLflow run: `{facts.mlflow_run_id}`",
        f"- Git commit: `{facts.git_commit}`", f"- Lock file sha256: `{facts.lock_hash}`",
        f"- Compared against: {('champion v' + facts.champion) if facts.champion else 'no champion'}",
    ]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, evaluation: Evaluation, gates: list[GateResult], facts: CardFacts) -> dict[str, Path]:
    """Write plots, report.md, report.html and model_card.md into `folder`; returns every file written."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = _plots(evaluation, folder)
    title = f"{facts.model} v{facts.version}: evaluation"
    sections = _sections(evaluation, gates, facts)
    files = {"report_md": folder / "report.md", "report_html": folder / "report.html",
             "model_card": folder / "model_card.md"}
    files["report_md"].write_text(_markdown(title, sections))
    files["report_html"].write_text(_html(title, sections, plots))
    files["model_card"].write_text(model_card(evaluation, gates, facts))
    if evaluation.explanation is not None:  # every feature's mean |SHAP| per output, as a table (MLflow artifact)
        files["shap_importance"] = folder / "shap_importance.csv"
        evaluation.explanation.mean_abs().rename_axis("feature").to_csv(files["shap_importance"])
    return {**files, **plots}
