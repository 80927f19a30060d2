"""The prediction log: one JSON line per answered request, written before the answer is sent.

Lines go to `<dir>/<UTC day>/<model version>-<pid>.jsonl` with one `os.write` on a file opened with O_APPEND:
no user-space buffer, so once a client has its answer the line is in the kernel and killing the server loses
nothing (a power cut can lose what the disk had not yet written). Each process writes its own file, so lines of
concurrent servers never interleave. `read_day(dir, day)` reads every line of a day back, skipping a torn last
line of a file (a write the kill interrupted, whose answer was never sent).
"""

import hmac
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROLE_HEADER = "x-mlplatform-role"  # set by the router: primary | candidate | shadow
# Set by the deployer's smoke test to `smoke:<the environment's smoke token>`: its requests are logged with the role
# `smoke`, never counted as traffic. Without the token (a client's header) the request is traffic like any other.
TRAFFIC_HEADER, SMOKE = "x-mlplatform-traffic", "smoke"


class PredictionLog:
    """Appends the answered requests of one serving process; without a folder it writes nothing."""

    def __init__(self, folder: str | Path | None, model: str, version: str, smoke_token: str = "") -> None:
        self.folder = Path(folder) if folder else None
        self.model, self.version, self.smoke_token = model, version, smoke_token
        self.day = ""
        self.fd: int | None = None

    def _file(self, now: float) -> int:
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        if day != self.day or self.fd is None:
            if self.fd is not None:
                os.close(self.fd)
            assert self.folder is not None  # only called to log, which needs a folder
            folder = self.folder / day
            folder.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(folder / f"{self.version}-{os.getpid()}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                              0o640)
            self.day = day
        return self.fd

    def append(self, request_id: str, rows: list[dict[str, Any]], outputs: dict[str, Any], role: str = "direct",
               **extra: Any) -> None:
        """Log one answered request: its rows and the answer's task fields (`outputs`: probabilities and labels, or
        values); call before the answer is sent."""
        if self.folder is None:
            return
        now = time.time()
        entry = {"request_id": request_id, "at": round(now, 6), "model": self.model, "model_version": self.version,
                 "role": role, "rows": rows, **outputs, **extra}
        self._write(now, (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode())

    def append_raw(self, request: bytes, answer: bytes, role: str = "direct") -> None:
        """Log one answered request from its validated JSON body and its JSON answer, as they are (no
        re-serialization on the hot path); `read_day` gives it the same fields as `append`."""
        if self.folder is None:
            return
        now = time.time()
        # A JSON body can hold raw newlines only as whitespace (inside strings they are escaped): one line.
        self._write(now, b'{"at":%.6f,"role":%s,"request":%s,"answer":%s}\n' % (
            now, json.dumps(role).encode(), request.replace(b"\n", b" ").replace(b"\r", b" "), answer))

    def _write(self, now: float, line: bytes) -> None:
        os.write(self._file(now), line)


def smoke_marker(token: str) -> str:
    """The traffic header's value on the deployer's smoke requests."""
    return f"{SMOKE}:{token}"


def role_of(headers: list[tuple[bytes, bytes]], smoke_token: str = "") -> str:
    """Who answered as the router routed it (`direct` when the request did not come through a router), or `smoke`
    for the deployer's smoke test (its marker with this backend's token), whichever backend answered it."""
    role = "direct"
    marker = smoke_marker(smoke_token).encode() if smoke_token else None
    for key, value in headers:
        name = key.lower()
        if marker is not None and name == TRAFFIC_HEADER.encode() and hmac.compare_digest(value, marker):
            return SMOKE
        if name == ROLE_HEADER.encode():
            role = value.decode(errors="replace")[:32]
    return role


def read_day(folder: Path, day: str) -> Iterator[dict[str, Any]]:
    """Every logged request of one UTC day, file by file; a torn last line (the server was killed) is skipped."""
    for path in sorted((Path(folder) / day).glob("*.jsonl")):
        with path.open("rb") as lines:
            for line in lines:
                if not line.endswith(b"\n"):
                    break  # the write a kill interrupted: that request was never answered
                yield _entry(json.loads(line))


def _entry(raw: dict[str, Any]) -> dict[str, Any]:
    """A logged line with the documented fields, whichever way it was written."""
    if "answer" not in raw:
        return raw
    answer, request = raw["answer"], raw["request"]
    entry = {**answer, "at": raw["at"], "role": raw["role"], "rows": request["rows"]}
    return entry | ({"entity_ids": request["entity_ids"]} if request.get("entity_ids") else {})


def day_frame(folders: Mapping[str, Path], day: str, spec: Any) -> Any:
    """One row per scored row of a day's logged requests, across environments (env, request, version, role,
    the entity where the request named it (`predict_entity`, or `predict` with `entity_ids`; else missing), the
    contract features, probability (binary: of the positive class; multiclass: of the answered class), label,
    value (regression))."""
    import pandas as pd

    records = []
    for env, folder in folders.items():
        for entry in read_day(folder, day):
            n = len(entry["rows"])
            entities = entry.get("entity_ids") or [None] * n
            probabilities = [_answered_probability(p) for p in entry.get("probabilities", [None] * n)]
            for row, entity, probability, label, value in zip(
                    entry["rows"], entities, probabilities, entry.get("labels", [None] * n),
                    entry.get("values", [None] * n), strict=True):
                records.append({"env": env, "request_id": entry["request_id"], "at": entry["at"],
                                "model_version": entry["model_version"], "role": entry["role"], spec.entity: entity,
                                **row, "probability": probability, "label": label, "value": value})
    columns = ["env", "request_id", "at", "model_version", "role", spec.entity, *spec.contract_feature_names,
               "probability", "label", "value"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], unit="s", utc=True)
    frame[spec.entity] = frame[spec.entity].astype("Int64")
    return frame.sort_values(["at", "request_id"], kind="stable").reset_index(drop=True)


def _answered_probability(p: Any) -> Any:
    """Binary: the positive class's probability; multiclass (a class → probability object): the answered class's."""
    return max(p.values()) if isinstance(p, dict) else p
