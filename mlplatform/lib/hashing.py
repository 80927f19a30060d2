"""Content hashes of DataFrames: data versions that change exactly when the content changes."""

import hashlib

import pandas as pd


def frame_version(frame: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and every value (row order matters, the index does not)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
