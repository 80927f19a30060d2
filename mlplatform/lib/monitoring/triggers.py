"""When the loop acts by itself: retraining on persistent drift or a live performance below its floor, and rolling
production back when a newly promoted champion does worse live than the one it replaced.

Pure decisions over what the monitoring assets recorded (their materialization metadata) and the audit log; the
sensors in `mlplatform/sensors.py` gather that evidence and turn a decision into a run.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlplatform.specs import Monitoring

RANK = {"none": 0, "warn": 1, "error": 2}
PREDICTION_ENDPOINTS = ("/predict", "/predict_entity")
NEVER_TRAINED = "never trained"


@dataclass(frozen=True)
class Batch:
    """One judged drift batch: a landed file (data drift) or a day of traffic (live drift)."""

    kind: str  # data | live
    partition: str
    severity: str  # none | warn | error | not judged
    reference: str  # data version of the training set it was judged against
    summary: str
    at: int = 0  # storage id of the judgement (its order among the instance's events)

    def metadata(self) -> dict[str, str]:
        """What a drift asset records of its judgement (read back by `from_metadata`)."""
        return {"severity": self.severity, "reference_data_version": self.reference, "summary": self.summary}

    @classmethod
    def from_metadata(cls, kind: str, partition: str, metadata: Mapping[str, Any], at: int) -> "Batch":
        return cls(kind, partition, str(metadata.get("severity", "not judged")),
                   str(metadata.get("reference_data_version", "")), str(metadata.get("summary", "")), at)


@dataclass(frozen=True)
class Day:
    """The live performance recorded for one serving day: per production version, labelled rows and metrics."""

    partition: str
    versions: Mapping[str, Mapping[str, float]]  # version -> {"labelled_rows": n, "roc_auc": x, ...}
    production_version: str = ""
    judged: bool = False
    below_floor: bool = False
    summary: str = ""
    at: int = 0  # storage id of the day's latest scoring

    @staticmethod
    def metric_key(env: str, version: str, metric: str) -> str:
        """The metadata entry of one served version's live metric on the day."""
        return f"{env}/v{version}/{metric}"

    @staticmethod
    def verdict_metadata(version: str, judged: bool, below_floor: bool, summary: str) -> dict[str, str | bool]:
        """What the live performance asset records of production's verdict (read back by `from_metadata`)."""
        return {"production_version": version, "judged": judged, "below_floor": below_floor, "performance": summary}

    @classmethod
    def from_metadata(cls, partition: str, metadata: Mapping[str, Any], at: int) -> "Day":
        """Production's versions and verdict from the metadata the live performance asset recorded."""
        versions: dict[str, dict[str, float]] = {}
        for name, value in metadata.items():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "production" and parts[1].startswith("v"):
                versions.setdefault(parts[1][1:], {})[parts[2]] = float(value)
        return cls(partition, versions, str(metadata.get("production_version", "")),
                   bool(metadata.get("judged", False)), bool(metadata.get("below_floor", False)),
                   str(metadata.get("performance", "")), at)


@dataclass(frozen=True)
class Decision:
    """A run to start: which trigger, why (for the run's tags and the audit log), and its dedup key."""

    trigger: str
    reason: str
    run_key: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        return {"mlplatform/trigger": self.trigger, "mlplatform/reason": self.reason[:4000]}


def drift_streak(batches: Sequence[Batch], policy: Monitoring) -> list[Batch] | None:
    """The newest `retrain_after_drifted_batches` judged batches (newest first), if every one drifted at the
    retraining severity against one and the same reference; None otherwise."""
    judged = [b for b in batches if b.severity in RANK]
    streak = judged[:policy.retrain_after_drifted_batches]
    if len(streak) < policy.retrain_after_drifted_batches or len({b.reference for b in streak}) != 1:
        return None
    floor = RANK[policy.retrain_on_severity]
    return streak if all(RANK[b.severity] >= floor for b in streak) else None


def _progress(kind: str, batches: Sequence[Batch], policy: Monitoring) -> str:
    """How far a kind of drift is from retraining: the newest judged batches in a row that drifted at the
    retraining severity against the newest one's reference, of the number it takes."""
    judged = [b for b in batches if b.severity in RANK]
    floor, run = RANK[policy.retrain_on_severity], []
    for b in judged:
        if RANK[b.severity] < floor or b.reference != judged[0].reference:
            break
        run.append(b.partition)
    where = f" ({', '.join(reversed(run))})" if run else ""
    return (f"{kind} drift: {len(run)} of {policy.retrain_after_drifted_batches} judged batches in a row at "
            f"{policy.retrain_on_severity} or worse{where}")


def retrain(data: Sequence[Batch], live: Sequence[Batch], days: Sequence[Day], policy: Monitoring,
            unseen_labels: Sequence[str], trained_on: str, first_training: bool = False,
            trained_at: int = 0) -> Decision | str:
    """Retrain when drift persists or production's latest judged day is below its floor, and landed labels exist
    that the current training set has not seen (retraining on the same data reproduces the same model).

    `batches` and `days` are newest first; `trained_on` names the current training set (part of the run key, so
    one piece of evidence starts one retraining per training set). Only evidence recorded after the newest training
    set (storage id `trained_at`) counts: a training that came after it already answered it. With
    `first_training` (nothing else trains:
    retraining on trigger only), landed labels and no training set yet start the first training.
    Returns the decision or why there is none.
    """
    if first_training and trained_on == NEVER_TRAINED and unseen_labels:
        return Decision("first_training", f"no model yet: first training on {len(unseen_labels)} landed partitions",
                        "retrain:first", {"unseen_label_partitions": list(unseen_labels)})
    reasons: list[str] = []
    evidence: dict[str, str | list[str]] = {}
    if trained_at:
        data = [b for b in data if b.at > trained_at]
        live = [b for b in live if b.at > trained_at]
        days = [d for d in days if d.at > trained_at]
    for kind, batches in (("data", data), ("live", live)):
        streak = drift_streak(batches, policy)
        if streak:
            parts = [b.partition for b in reversed(streak)]
            reasons.append(f"{kind} drift at {policy.retrain_on_severity} or worse in the last {len(streak)} "
                           f"batches ({', '.join(parts)}): {streak[0].summary}")
            evidence[f"{kind}_drift"] = parts
    judged = [d for d in days if d.judged]
    if judged and judged[0].below_floor:
        reasons.append(f"live performance on {judged[0].partition}: {judged[0].summary}")
        evidence["performance"] = judged[0].partition
    if not reasons:
        performance = (f"live performance on {judged[0].partition}: within the gates" if judged
                       else "live performance: no judged day")
        return ("no persistent drift and no live performance below its floor since the last training ("
                f"{_progress('data', data, policy)}; {_progress('live', live, policy)}; {performance})")
    if not unseen_labels:
        return f"{'; '.join(reasons)}; but every landed label is in the current training set (nothing new to learn)"
    key = ";".join(f"{k}={v if isinstance(v, str) else ','.join(v)}" for k, v in sorted(evidence.items()))
    trigger = "drift" if any(k.endswith("drift") for k in evidence) else "performance"
    return Decision(trigger, "; ".join(reasons), f"retrain:{key}:{trained_on}",
                    {**evidence, "unseen_label_partitions": list(unseen_labels)})


def pooled(days: Sequence[Day], version: str, metric: str) -> tuple[float, int]:
    """A version's metric over days, weighted by each day's labelled rows; (nan, 0) without labelled rows."""
    total, weight = 0.0, 0
    for day in days:
        values = day.versions.get(version, {})
        rows, value = int(values.get("labelled_rows", 0)), values.get(metric)
        if rows and value is not None:
            total, weight = total + value * rows, weight + rows
    return (total / weight if weight else float("nan")), weight


def rollback(promotion: Mapping[str, Any] | None, serving_version: str, days: Sequence[Day], policy: Monitoring,
             error_rate: tuple[float, int] | None = None, metric: str = "roc_auc",
             direction: int = 1) -> Decision | str:
    """Roll production back when the champion promoted last does worse live than the one it replaced: its
    labelled-row-weighted headline metric lower by more than the tolerance, or its error rate above the maximum.

    `promotion` is the audit entry of the newest promotion; `serving_version` what production serves now;
    `error_rate` (share of failed prediction requests, requests) of the serving version, when known.
    """
    if not promotion or promotion.get("action") != "promote":
        return "production's newest change is not a promotion"
    champion = promotion.get("champion") or {}
    new, old = str(champion.get("to") or ""), str(champion.get("from") or "")
    if not old or old == new:
        return "the promotion replaced no earlier champion"
    if serving_version != new:
        return f"production no longer serves v{new} (it serves v{serving_version})"
    key = f"rollback:{promotion.get('at')}:{new}"
    if error_rate is not None:
        rate, requests = error_rate
        if requests >= policy.min_requests_for_error_rate and rate > policy.max_error_rate:
            return Decision("error_rate", f"v{new} failed {rate:.1%} of {requests} prediction requests since its "
                                          f"promotion (maximum {policy.max_error_rate:.0%}); v{old} serves again",
                            key, {"version": new, "previous": old, "error_rate": rate, "requests": requests})
    # `metric`: the spec's rollback metric (`Spec.rollback_metric`); `direction`: +1 when higher is better (RMSE: -1)
    new_value, new_rows = pooled(days, new, metric)
    old_value, old_rows = pooled(days, old, metric)
    if min(new_rows, old_rows) < policy.min_label_rows:
        return (f"not enough labelled rows yet to compare v{new} ({new_rows}) with v{old} ({old_rows}); "
                f"{policy.min_label_rows} each are needed")
    tolerance, why = policy.rollback_tolerance, f"{policy.rollback_tolerance}"
    if direction < 0 and policy.rollback_relative_tolerance * abs(old_value) > tolerance:  # an error metric
        tolerance = policy.rollback_relative_tolerance * abs(old_value)
        why = f"{tolerance:.3f}, {policy.rollback_relative_tolerance:.0%} of v{old}'s"
    if direction * (old_value - new_value) > tolerance:
        return Decision("live_performance",
                        f"live {metric} of v{new} is {new_value:.3f} on {new_rows} labelled rows, "
                        f"{abs(old_value - new_value):.3f} {'below' if direction > 0 else 'above'} v{old}'s "
                        f"{old_value:.3f} on {old_rows} "
                        f"(tolerance {why}); v{old} serves again", key,
                        {"version": new, "previous": old, metric: new_value, f"previous_{metric}": old_value,
                         "labelled_rows": new_rows, "previous_labelled_rows": old_rows})
    return f"v{new} {metric} {new_value:.3f} vs v{old} {old_value:.3f}: within the tolerance ({why})"


def error_rate(metrics_text: str) -> tuple[float, int]:
    """(share of prediction requests answered with a server error, prediction requests) from a service's
    Prometheus exposition (BentoML's `bentoml_service_request_total`); client errors (4xx) are the caller's."""
    from prometheus_client.parser import text_string_to_metric_families

    total = failed = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "bentoml_service_request":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("endpoint") in PREDICTION_ENDPOINTS:
                total += sample.value
                failed += sample.value if sample.labels.get("http_response_code", "").startswith("5") else 0
    return (failed / total if total else 0.0), int(total)
