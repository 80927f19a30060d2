"""Entity ids → the features the online store holds for them (Feast), for `predict_entity`.

The service opens the store in a background thread (importing feast takes ~10 s) so that start-up and `predict`
do not wait for it; `predict_entity` waits for it to be ready, up to a bound.
"""

import threading
from pathlib import Path
from typing import Any

from mlplatform.specs import Spec


class UnknownEntities(LookupError):
    """Some requested entity ids have no features in the online store."""

    def __init__(self, spec: Spec, ids: list[int]) -> None:
        self.ids = ids
        super().__init__(f"unknown {spec.entity} (no features in the online store): {', '.join(map(str, ids))}")


class OnlineFeatures:
    """The spec's feature service read from the Feast online store in `feast_dir` (ServingSettings.feast_dir)."""

    def __init__(self, spec: Spec, feast_dir: str | None, online_store: str = "sqlite",
                 redis: str = "127.0.0.1:6379", registry: str = "", project: str = "mlplatform") -> None:
        self.spec, self.feast_dir, self.online_store, self.redis = spec, feast_dir, online_store, redis
        self.registry, self.project = registry, project
        self.ready = threading.Event()
        self.store: Any = None
        self.error: str | None = None if self.feast_dir else "no online store configured (MLPLATFORM_FEAST_DIR)"

    @property
    def configured(self) -> bool:
        return self.feast_dir is not None

    def open_in_background(self) -> "OnlineFeatures":
        if self.configured:
            threading.Thread(target=self._open, name="feast-open", daemon=True).start()
        return self

    def _open(self) -> None:
        try:
            from feast import FeatureStore

            from mlplatform.lib.features.feast_repo import repo_config

            assert self.feast_dir is not None  # opened only when configured
            folder = Path(self.feast_dir)
            config = repo_config(folder, folder, self.online_store, self.redis, self.registry, self.project)
            self.store = FeatureStore(config=config, repo_path=str(folder))
            self.service = self.store.get_feature_service(self.spec.feature_service_name)
        except Exception as exc:  # reported on every predict_entity call, the service keeps serving predict
            self.error = f"the online store at {self.feast_dir} cannot be opened: {type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def rows(self, entity_ids: list[int], wait_s: float = 30.0) -> list[dict[str, Any]]:
        """The contract features of each id, in order; raises UnknownEntities naming every id without features."""
        if not self.ready.wait(wait_s) or self.store is None:
            raise RuntimeError(self.error or f"the online store is still opening after {wait_s:.0f} s")
        online = self.store.get_online_features(features=self.service,
                                                entity_rows=[{self.spec.entity: int(i)} for i in entity_ids]).to_dict()
        names = self.spec.contract_feature_names
        unknown = [i for n, i in enumerate(entity_ids) if all(online[c][n] is None for c in names)]
        if unknown:
            raise UnknownEntities(self.spec, unknown)
        return [{c: online[c][n] for c in names} for n in range(len(entity_ids))]
