"""The scale-out profile: the same ingestion with Feast's online store on the machine's Redis."""

import fcntl
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.definitions import build_definitions
from mlplatform.lib.data.demo import credit_day
from mlplatform_tests.conftest import Platform, make_settings
from mlplatform_tests.pipelines import CREDIT

REDIS = ("127.0.0.1", 6379)
DB = 11  # a database of its own, emptied before and after


@pytest.fixture
def redis_platform(tmp_path):
    import redis  # the machine runs Redis on 127.0.0.1:6379; .ci/run starts it when it is down

    # one test at a time on this database, across every test run on the machine (another clone's CI may run it)
    lock = (Path(tempfile.gettempdir()) / f"mlplatform-test-redis-db{DB}.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    client = redis.Redis(*REDIS, db=DB)
    client.flushdb()
    settings = make_settings(tmp_path / "home", MLPLATFORM_FEAST_ONLINE_STORE="redis",
                             MLPLATFORM_REDIS=f"{REDIS[0]}:{REDIS[1]},db={DB}")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield Platform(settings, build_definitions([CREDIT], settings), instance), client
    client.flushdb()
    lock.close()  # releases the lock


def test_ingestion_pushes_features_to_redis_with_parity(redis_platform):
    platform, client = redis_platform
    day = credit_day(0, 250)
    platform.land("2026-01-01.csv", day)
    result = platform.ingest("2026-01-01")
    assert result.success
    (parity,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "online_offline_parity"]
    assert parity.passed and parity.metadata["entities_sampled"].value == 200
    assert client.dbsize() == 250  # one hash per entity
    store = platform.defs.resources["feast"].store()
    online = store.get_online_features(features=store.get_feature_service("credit_v1"),
                                       entity_rows=[{"customer_id": int(day["customer_id"][0])}]).to_df()
    assert online["income"][0] == day["income"][0]
