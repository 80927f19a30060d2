"""Training chain at scale: wall time and peak memory at two history sizes, side by side in one run.

The chain is what the training_set, model and evaluation assets run, called through the same lib functions:
  training_set  Feast point-in-time join (`get_historical_features` through the feature service) over every
                partition's offline parquet, then `.to_df()` and the column order/sort of `lib.training_set`;
  schema        the training set's pandera check (the training_set asset validates before publishing);
  hash          `frame_version` of the training set (its data version; the model asset computes it again);
  fit           `train.fit` with the spec's default params (time split, scale + one-hot, logistic regression);
  score         holdout ROC AUC and the model's behaviour version (the model asset's extra scoring);
  assess        `assessment.assess`: the logged model loaded back as a pyfunc, metrics, fairness slices,
                permutation importance, gates and the report files;
  mlflow        `log_and_register` (run, params, metrics, model with signature, registry alias) plus
                `record_evaluation` (gate tags, metrics, report artifacts), on a migrated sqlite DB.

History: `--days` daily partitions of `credit_day` demo rows (deterministic per seed and day), validated
against the contract, featurized and written as each partition's Feast offline parquet the way the features
asset writes it, with the label rows of the labels asset. That preparation runs in its own process and is
not timed. Each size is then measured in a fresh process, after a tiny warm-up run of the whole chain (so
imports and first-call costs don't count against the smaller size), with RSS sampled every 10 ms per phase.

Run: `.venv/bin/python benchmarks/bench_training_scale.py [--sizes 500000,5000000] [--days 30]`
(quick check: `--sizes 20000,200000`).
"""

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO = ROOT / "feature_repo"
DEMO_PIPELINE = ROOT / "demo" / "defs" / "credit" / "defs.yaml"  # the demo project's pipeline
PHASES = ("training_set", "schema", "hash", "fit", "score", "assess", "mlflow")
WARM_UP = (3, 2_000)  # days x rows per day of the warm-up chain
TIME_GROWTH_PER_ROW_GROWTH = 1.1  # target: time grows at most 11x for 10x rows
PEAK_RSS_TARGET_GB = 4.0
GB = 1024**3


def prepare(folder: Path, days: int, rows_per_day: int, seed: int) -> None:
    """Offline parquet per partition (as the features asset writes it) and pickled label rows (as the IO manager)."""
    from mlplatform.components.pipeline import load_spec
    from mlplatform.lib.data.demo import DEMO_START, credit_day
    from mlplatform.lib.data.labels import label_rows
    from mlplatform.lib.data.validation import validate_landed
    from mlplatform.lib.features import online
    from mlplatform.lib.features.featurize import featurize
    from mlplatform.resources import FeastStore

    CREDIT = load_spec(DEMO_PIPELINE)
    feast = FeastStore(feast_dir=str(folder / "feast"), repo_path=str(FEATURE_REPO))
    feast.apply(CREDIT)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for day in range(days):
        key = str(DEMO_START + timedelta(days=day))
        result = validate_landed(credit_day(day, rows_per_day, seed), CREDIT)
        assert result.quarantined.empty, result.summary()
        online.write_offline(featurize(result.valid, CREDIT), feast.offline_dir(CREDIT), key)
        with open(folder / "labels" / f"{key}.pkl", "wb") as out:
            pickle.dump(label_rows(result.valid, CREDIT), out, protocol=pickle.HIGHEST_PROTOCOL)


class Meter:
    """Wall time and peak RSS per phase (a sampling thread), phases may be entered more than once."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._process, self._interval = psutil.Process(), interval
        self._phase: str | None = None
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while True:
            phase = self._phase
            if phase is not None:
                self.peak[phase] = max(self.peak.get(phase, 0), self.rss())
            time.sleep(self._interval)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._phase = name
        self.peak[name] = max(self.peak.get(name, 0), self.rss())
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.peak[name] = max(self.peak[name], self.rss())
            self._phase = None


def chain(folder: Path, mlflow_uri: str, meter: Meter) -> dict[str, object]:
    """The training, model and evaluation assets' work on one prepared history; returns facts to print."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from mlplatform.components.pipeline import load_spec
    from mlplatform.lib.evaluation import assessment
    from mlplatform.lib.evaluation.gates import Thresholds
    from mlplatform.lib.features.training_set import training_set
    from mlplatform.lib.hashing import frame_version
    from mlplatform.lib.training import tracking, train
    from mlplatform.resources import FeastStore
    from mlplatform.schemas import training_set_schema

    spec = load_spec(DEMO_PIPELINE)

    labels = {p.stem: pd.read_pickle(p) for p in sorted((folder / "labels").glob("*.pkl"))}
    store = FeastStore(feast_dir=str(folder / "feast"), repo_path=str(FEATURE_REPO)).store()
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    with meter.phase("training_set"):
        frame = training_set(labels, spec, store)
    del labels  # the training_set step's input: released when the step ends
    with meter.phase("schema"):
        frame = training_set_schema(spec).validate(frame, lazy=True)
    with meter.phase("hash"):
        version = frame_version(frame)
    params = train.TrainParams(spec.estimator_name, spec.regularization_c, spec.max_iter, spec.seed, spec.holdout_days)
    with meter.phase("fit"):
        pipeline, train_rows, holdout = train.fit(frame, spec, params)
    with meter.phase("score"):
        _, auc = train.headline_metric(pipeline, holdout, spec)
        train.behaviour_version(pipeline, holdout, spec)
    partitions = sorted(frame["_partition"].unique())
    tags = {"dagster.run_id": "benchmark-run", "training_set.data_version": version}
    metrics = {"holdout_roc_auc": auc, "train_rows": train_rows, "holdout_rows": len(holdout)}
    with meter.phase("mlflow"):
        tracked = tracking.log_and_register(client, mlflow_uri, str(folder.parent / "mlflow" / "artifacts"), spec,
                                            pipeline, holdout[spec.feature_names], params.__dict__, metrics, tags)
    candidate = train.TrainedModel(pipeline, params, tracked, version, partitions, train_rows, len(holdout), tags,
                                   spec)
    g = spec.gates
    thresholds = Thresholds.of(spec)
    with meter.phase("assess"):
        predict = tracking.registered_predictor(mlflow_uri, tracked.model_uri)
        result = assessment.assess(spec, candidate, frame, None, None, predict, thresholds, g.decision_threshold,
                                   g.min_slice_rows, folder / "reports" / f"v{tracked.version}")
    with meter.phase("mlflow"):
        tracking.record_evaluation(client, tracked, result.metrics, {x.name: x.passed for x in result.gates},
                                   result.files["report_md"].parent)
    return {"rows": len(frame), "train_rows": train_rows, "holdout_rows": len(holdout), "data_version": version,
            "roc_auc": result.metrics["roc_auc"], "gates_passed": result.passed}


def measure(folder: Path, warm: Path) -> dict[str, object]:
    """The chain once on the warm-up history (imports, first calls), then measured on the real one."""
    from mlflow.tracking import MlflowClient

    mlflow_uri = f"sqlite:///{folder.parent / 'mlflow' / 'mlflow.db'}"
    (folder.parent / "mlflow").mkdir(exist_ok=True)
    start = time.perf_counter()
    MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).search_experiments()  # migrates the schema
    meter = Meter()
    chain(warm, mlflow_uri, meter)
    warm_up_s = time.perf_counter() - start
    meter.seconds.clear()
    meter.peak.clear()
    baseline = meter.rss()
    facts = chain(folder, mlflow_uri, meter)
    return {**facts, "warm_up_s": warm_up_s, "baseline_rss": baseline, "seconds": meter.seconds, "peak": meter.peak,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def child(*args: object) -> str:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr[-5000:], file=sys.stderr)
        raise SystemExit(f"child {args[0]} failed")
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def run_size(tmp: Path, rows: int, days: int, seed: int) -> dict[str, Any]:
    """Prepare the history in one process, measure the chain in a fresh one."""
    folder, warm = tmp / f"rows-{rows}" / "history", tmp / f"rows-{rows}" / "warm-up"
    start = time.perf_counter()
    child("prepare", folder, days, round(rows / days), seed)
    child("prepare", warm, *WARM_UP, seed + 1)
    prepare_s = time.perf_counter() - start
    result = json.loads(child("measure", folder, warm))
    result["prepare_s"] = prepare_s
    print(f"  measured {result['rows']:,} rows: total {sum(result['seconds'].values()):.1f} s, "
          f"peak RSS {result['max_rss'] / GB:.2f} GB (preparation {prepare_s:.0f} s)", flush=True)
    return result


def report(results: list[dict[str, Any]], days: int) -> None:
    small, large = results[0], results[-1]
    grow = large["rows"] / small["rows"]
    head = "".join(f" {r['rows']:>10,} rows" + " " * 9 for r in results)
    print(f"\n## Training chain at scale ({days} daily partitions; fresh process per size; growth = last / first)")
    print(f"  {'phase':14}{head}  time growth  peak growth")
    print(f"  {'':14}" + "".join(f" {'s':>10} {'peak RSS GB':>13}" for _ in results))
    for name in PHASES:
        cells = "".join(f" {r['seconds'][name]:10.2f} {r['peak'][name] / GB:13.2f}" for r in results)
        print(f"  {name:14}{cells}  {large['seconds'][name] / small['seconds'][name]:10.2f}x"
              f"  {large['peak'][name] / small['peak'][name]:10.2f}x")
    totals = [sum(r["seconds"].values()) for r in results]
    cells = "".join(f" {t:10.2f} {r['max_rss'] / GB:13.2f}" for t, r in zip(totals, results, strict=True))
    print(f"  {'total':14}{cells}  {totals[-1] / totals[0]:10.2f}x  {large['max_rss'] / small['max_rss']:10.2f}x")
    print(f"  {'RSS before':14}" + "".join(f" {'':10} {r['baseline_rss'] / GB:13.2f}" for r in results)
          + "  (after imports and warm-up, before the measured chain)")
    for r in results:
        print(f"  {r['rows']:,} rows: {r['train_rows']:,} train / {r['holdout_rows']:,} holdout, fit "
              f"{r['train_rows'] / r['seconds']['fit']:,.0f} rows/s, ROC AUC {r['roc_auc']:.4f}, gates "
              f"{'passed' if r['gates_passed'] else 'FAILED'}, data version {r['data_version']}, warm-up "
              f"{r['warm_up_s']:.0f} s, preparation {r['prepare_s']:.0f} s")
    allowed, peak = TIME_GROWTH_PER_ROW_GROWTH * grow, large["max_rss"] / GB
    over = [n for n in PHASES if large["seconds"][n] / small["seconds"][n] > allowed]
    print(f"  rows grew {grow:.2f}x. Target time growth <= {allowed:.1f}x: total {totals[-1] / totals[0]:.2f}x "
          f"{'met' if totals[-1] / totals[0] <= allowed else 'MISSED'}"
          f"{'; phases over it: ' + ', '.join(over) if over else ''}")
    print(f"  Target peak RSS <= {PEAK_RSS_TARGET_GB:.0f} GB at {large['rows']:,} rows: {peak:.2f} GB "
          f"{'met' if peak <= PEAK_RSS_TARGET_GB else 'MISSED'}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        step, folder, *rest = sys.argv[2:]
        if step == "prepare":
            prepare(Path(folder), *map(int, rest))
        else:
            print(json.dumps(measure(Path(folder), Path(rest[0]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500000,5000000", help="rows of history in all, comma-separated")
    parser.add_argument("--days", type=int, default=30, help="daily partitions the rows are spread over")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-training-scale-") as tmp:
            results.append(run_size(Path(tmp), rows, args.days, args.seed))
    report(results, args.days)


if __name__ == "__main__":
    main()
