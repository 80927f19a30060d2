"""Features through real Feast on tmp folders: offline source, registry, online store and parity."""

import dagster as dg
import numpy as np
import pandas as pd

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform_tests.pipelines import CREDIT


def check(result, name: str) -> dg.AssetCheckEvaluation:  # noqa: ANN001
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation


def online_values(platform, entity_ids: list[int]) -> pd.DataFrame:  # noqa: ANN001
    store = platform.defs.resources["feast"].store()
    rows = [{CREDIT.entity: int(i)} for i in entity_ids]
    return store.get_online_features(features=store.get_feature_service("credit_v1"), entity_rows=rows).to_df()


def test_featurize_is_row_wise_and_serves_requests_without_keys():
    day = credit_day(0, 100)
    full = featurize(day, CREDIT)
    assert list(full.columns) == [CREDIT.entity, CREDIT.timestamp, *CREDIT.feature_names]
    request = featurize(day.iloc[[7]], CREDIT, keys=False)
    pd.testing.assert_frame_equal(request, full.iloc[[7]].drop(columns=[CREDIT.entity, CREDIT.timestamp]))
    assert np.allclose(full["loan_to_income"], day["loan_amount"] / day["income"])
    assert np.allclose(full["log_income"], np.log1p(day["income"]))


def test_zero_denominator_gives_zero_not_inf():
    day = credit_day(0, 5)
    day.loc[0, "income"] = 0.0
    assert featurize(day, CREDIT)["loan_to_income"].iloc[0] == 0.0


def test_ingest_writes_the_offline_source_and_online_values_with_parity(platform):
    platform.land("2026-01-01.csv", day=0, rows=300)
    result = platform.ingest("2026-01-01")
    assert result.success
    parity = check(result, "online_offline_parity")
    assert parity.passed and parity.metadata["entities_sampled"].value == 200
    offline = pd.read_parquet(platform.settings.feast_dir / "offline" / "credit" / "2026-01-01.parquet")
    assert len(offline) == 300
    online = online_values(platform, offline[CREDIT.entity].head(5).tolist()).set_index(CREDIT.entity)
    expected = offline.set_index(CREDIT.entity).loc[online.index, CREDIT.feature_names]
    pd.testing.assert_frame_equal(online[CREDIT.feature_names], expected, check_like=True)


def test_an_older_partition_ingested_late_does_not_overwrite_newer_online_values(platform):
    newer, older = credit_day(1, 200), credit_day(0, 200)
    older[CREDIT.entity] = newer[CREDIT.entity].to_numpy()  # the same customers on both days
    platform.land("2026-01-02.csv", newer)
    platform.land("2026-01-01.csv", older)
    assert platform.ingest("2026-01-02").success
    result = platform.ingest("2026-01-01")
    assert result.success and check(result, "online_offline_parity").passed
    (features,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "features"]
    assert features.materialization.metadata["online_rows_written"].value == 0
    online = online_values(platform, newer[CREDIT.entity].head(10).tolist())
    assert online["income"].tolist() == newer["income"].head(10).tolist()


def test_registry_is_applied_once_and_not_again_while_definitions_are_unchanged(platform):
    platform.land("2026-01-01.csv", day=0)
    platform.land("2026-01-02.csv", day=1)
    first, second = platform.ingest("2026-01-01"), platform.ingest("2026-01-02")

    def applied(result) -> str:  # noqa: ANN001
        (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "feature_registry"]
        return event.materialization.metadata["applied"].value

    assert "FeatureService:credit_v1" in applied(first) and "FeatureView:credit_features" in applied(first)
    assert applied(second) == "unchanged"
    store = platform.defs.resources["feast"].store()
    assert [f.name for f in store.list_feature_services()] == ["credit_v1"]
    assert store.get_feature_service("credit_v1").tags["version"] == "1"
