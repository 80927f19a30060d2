import numpy as np
import pandas as pd
import pytest

from mlplatform.lib.data.demo import CORRUPTIONS, credit_day, write_demo_data
from mlplatform.lib.data.landing import partition_key, read_landed
from mlplatform.lib.data.validation import validate_landed
from mlplatform_tests.pipelines import CREDIT


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    a = write_demo_data(tmp_path / "a", days=2, rows_per_day=200, seed=7)
    b = write_demo_data(tmp_path / "b", days=2, rows_per_day=200, seed=7)
    c = write_demo_data(tmp_path / "c", days=2, rows_per_day=200, seed=8)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    assert [p.name for p in a] == ["2026-01-01.csv", "2026-01-02.csv"]


def test_demo_days_meet_the_contract_and_have_real_signal():
    day = credit_day(0, 5000)
    result = validate_landed(day, CREDIT)
    assert len(result.valid) == 5000 and result.quarantined.empty
    assert 0.05 < day["default"].mean() < 0.4
    late = day.groupby(day["num_late_payments"] > 1)["default"].mean()
    assert late[True] > late[False] + 0.1
    assert set(day["age_band"]) <= set(CREDIT.sensitive.categories)


def test_drift_shifts_features_and_the_label_relationship():
    before, after = credit_day(3, 20000), credit_day(3, 20000, drifted=True)
    assert after["credit_utilization"].mean() > before["credit_utilization"].mean() + 0.1
    assert after["income"].median() < before["income"].median() * 0.9

    def util_effect(frame: pd.DataFrame) -> float:
        return float(np.polyfit(frame["credit_utilization"], frame["default"], 1)[0])

    assert util_effect(after) < util_effect(before)


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_each_corruption_writes_one_named_file_after_the_days(tmp_path, kind):
    paths = write_demo_data(tmp_path, days=2, rows_per_day=100, corrupt_kind=kind)
    assert len(paths) == 3
    assert partition_key(paths[-1]) == f"2026-01-03_corrupt-{kind}"


def test_unknown_corruption_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown corruption 'bogus'; expected one of wrong-dtype"):
        write_demo_data(tmp_path, days=1, rows_per_day=10, corrupt_kind="bogus")


def test_parquet_demo_files_read_back_identically(tmp_path):
    (path,) = write_demo_data(tmp_path, days=1, rows_per_day=50, file_format="parquet")
    pd.testing.assert_frame_equal(read_landed(path), credit_day(0, 50))
