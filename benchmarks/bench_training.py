"""Training benchmarks, measured side by side in one run.

  MLflow tracking overhead: the same fit with and without `log_and_register` (params, metrics, model with
  signature, registry version and alias) against an existing, already migrated sqlite database.

Run: `.venv/bin/python benchmarks/bench_training.py [--rows 50000] [--rounds 5]`.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from mlplatform.components.pipeline import load_spec
from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training import tracking, train
from mlplatform.settings import PROJECT

CREDIT = load_spec(PROJECT / "demo" / "defs" / "credit" / "defs.yaml")  # the demo project's pipeline


def frame(days: int, rows: int) -> pd.DataFrame:
    raw = pd.concat([credit_day(d, rows) for d in range(days)], ignore_index=True)
    return featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="rows of training data in all")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = frame(5, args.rows // 5)
    params = train.TrainParams(CREDIT.estimator, CREDIT.regularization_c, CREDIT.max_iter, CREDIT.seed, 2)
    with tempfile.TemporaryDirectory() as tmp:
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        start = time.perf_counter()
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments()
        migrate = time.perf_counter() - start

        def tracked() -> None:
            pipeline, _, holdout = train.fit(data, CREDIT, params)
            metrics = {"holdout_roc_auc": train.headline_metric(pipeline, holdout, CREDIT)[1]}
            tags = {"dagster.run_id": "benchmark-run"}
            tracking.log_and_register(client, uri, str(Path(tmp) / "artifacts"), CREDIT, pipeline,
                                      holdout[CREDIT.feature_names], params.__dict__, metrics, tags)

        def untracked() -> None:
            pipeline, _, holdout = train.fit(data, CREDIT, params)
            train.headline_metric(pipeline, holdout, CREDIT)[1]

        tracked()  # first call pays imports and creates the experiment and registered model
        with_mlflow: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):
            for fn, out in ((tracked, with_mlflow), (untracked, without)):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    a, b = statistics.median(with_mlflow), statistics.median(without)
    print(f"## MLflow tracking overhead ({args.rows:,} rows, median of {args.rounds} interleaved rounds)")
    print(f"  fresh sqlite database, schema migration once: {migrate:.2f} s")
    print(f"  fit + evaluate:                      {b:.3f} s")
    print(f"  fit + evaluate + track and register: {a:.3f} s  ({a / b:.2f}x)")
    print(f"  overhead per training run: {a - b:.3f} s   target <= 1 s")


if __name__ == "__main__":
    main()
