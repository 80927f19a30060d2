"""Landed files: finding them, naming their partitions, hashing and reading them with clear errors."""

import gzip
import hashlib
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class LandedFileError(ValueError):
    """A landed file cannot be read as a table; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


SUFFIXES = {"csv": (".csv", ".csv.gz"), "parquet": (".parquet",)}  # matched case-insensitively


def landed_format(path: Path, formats: tuple[str, ...] = tuple(SUFFIXES)) -> tuple[str, str] | None:
    """(format, name without its suffix) of a landed file's name, or None when it is not one of `formats`."""
    lower = path.name.lower()
    for fmt in formats:
        for suffix in sorted(SUFFIXES.get(fmt, ()), key=len, reverse=True):
            if lower.endswith(suffix) and len(lower) > len(suffix):
                return fmt, path.name[: -len(suffix)]
    return None


def partition_key(path: Path) -> str:
    """The partition key of a landed file: its name without the suffix, made safe for Dagster."""
    found = landed_format(path)
    return _KEY_UNSAFE.sub("_", found[1] if found else path.stem)


NOT_REGULAR = ("not a regular file: symbolic links (and devices, pipes, folders) are never followed or read; "
               "land the file itself")


@dataclass(frozen=True)
class Listing:
    """A landing folder read once: its landed files by partition key, and every other entry with why it is not one."""

    files: dict[str, Path]
    refused: dict[str, str]  # named like a landed file, but never read (not a regular file, a partition twice)
    ignored: dict[str, str]  # not landed files at all (hidden while being written, another type)


def _regular(path: Path) -> bool:
    """A regular file in its own right (a symbolic link is not, whatever it points at)."""
    return not path.is_symlink() and path.is_file()


def list_landing(folder: Path, formats: tuple[str, ...]) -> Listing:
    """Every entry of the landing folder: a landed file, refused (with why) or ignored (with why)."""
    listing = Listing({}, {}, {})
    if not folder.is_dir():
        return listing
    claimed: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            listing.ignored[path.name] = "hidden: a file being written is named with a leading '.' until complete"
        elif landed_format(path, formats) is None:
            kinds = ", ".join(s for f in formats for s in SUFFIXES.get(f, ()))
            listing.ignored[path.name] = f"not a landed file type (expected {kinds}, in any case)"
        elif not _regular(path):
            listing.refused[path.name] = NOT_REGULAR
        else:
            claimed.setdefault(partition_key(path), []).append(path)
    for key, paths in claimed.items():
        if len(paths) == 1:
            listing.files[key] = paths[0]
            continue
        names = ", ".join(p.name for p in paths)
        for path in paths:  # only these are held back; every other file is ingested
            listing.refused[path.name] = f"{names} map to one partition {key!r}: rename all but one"
    return listing


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes: the raw partition's data version and the sensor's run key."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Limits:
    """The most one landed file may hold (Spec.max_file_bytes, max_columns, max_rows)."""

    max_bytes: int = 2_000_000_000
    max_columns: int = 1_000
    max_rows: int = 20_000_000


HEADER_BYTES = 1 << 20  # a CSV header line longer than this is refused before anything else is read


def read_landed(path: Path, limits: Limits = Limits()) -> pd.DataFrame:
    """Read a CSV or Parquet file; anything that is not a readable table, or exceeds `limits`, raises
    LandedFileError naming the reason (a file over a limit is refused before it is parsed)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise LandedFileError(path, NOT_REGULAR)
    if not path.exists():
        raise LandedFileError(path, "file not found in the landing zone")
    size = path.stat().st_size
    if size == 0:
        raise LandedFileError(path, "file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise LandedFileError(path, f"{size} bytes: more than the limit of {limits.max_bytes} (Spec.max_file_bytes)")
    found = landed_format(path)
    if found is None:
        raise LandedFileError(path, f"unsupported file type {path.suffix!r}: expected .csv, .csv.gz or .parquet")
    if found[0] == "parquet":
        return _read_parquet(path, limits)
    if path.name.lower().endswith(".gz"):
        return _read_gzip_csv(path, limits)
    return _read_csv(path, limits)


def _read_parquet(path: Path, limits: Limits) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(-4, 2)
        tail = handle.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        raise LandedFileError(path, "not a complete Parquet file (missing PAR1 magic bytes: truncated or corrupt)")
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a corrupt footer
        raise LandedFileError(path, f"corrupt Parquet file: {exc}") from exc
    _check_shape(path, meta.num_columns, meta.num_rows, limits)
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt pages
        raise LandedFileError(path, f"corrupt Parquet file: {exc}") from exc
    if frame.empty:
        raise LandedFileError(path, "Parquet file has no rows")
    return frame


def _read_csv(path: Path, limits: Limits) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(HEADER_BYTES)
        handle.seek(-1, 2)
        last = handle.read(1)
    _check_text(path, head[:8192], last)
    _check_header(path, head, limits)
    with path.open("rb") as handle:  # lines counted in blocks (about 1 GB/s) before pandas parses anything
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
    _check_shape(path, 0, lines - 1, limits)
    return _csv_frame(path, path)


def _read_gzip_csv(path: Path, limits: Limits) -> pd.DataFrame:
    try:
        with gzip.open(path, "rb") as handle:  # bounded: a small file that inflates past the limit is refused
            data = handle.read(limits.max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise LandedFileError(path, f"not a complete gzip file: {exc}") from exc
    if len(data) > limits.max_bytes:
        raise LandedFileError(path, f"more than {limits.max_bytes} bytes once decompressed: more than the limit "
                                    "(Spec.max_file_bytes)")
    if not data:
        raise LandedFileError(path, "file is empty once decompressed")
    _check_text(path, data[:8192], data[-1:])
    _check_header(path, data[:HEADER_BYTES], limits)
    _check_shape(path, 0, data.count(b"\n") - 1, limits)
    return _csv_frame(path, io.BytesIO(data))


def _check_header(path: Path, head: bytes, limits: Limits) -> None:
    """The header line ends within HEADER_BYTES and names at most `limits.max_columns` columns."""
    end = head.find(b"\n")
    if end < 0 and len(head) >= HEADER_BYTES:
        raise LandedFileError(path, f"the header line is longer than {HEADER_BYTES} bytes: not a header a contract "
                                    f"can have (at most {limits.max_columns} columns, Spec.max_columns)")
    _check_shape(path, head[: end if end >= 0 else len(head)].count(b",") + 1, 0, limits)


def _check_shape(path: Path, columns: int, rows: int, limits: Limits) -> None:
    if columns > limits.max_columns:
        raise LandedFileError(path, f"{columns} columns: more than the limit of {limits.max_columns} "
                                    "(Spec.max_columns)")
    if rows > limits.max_rows:
        raise LandedFileError(path, f"{rows} rows: more than the limit of {limits.max_rows} (Spec.max_rows)")


def _check_text(path: Path, head: bytes, last: bytes) -> None:
    """UTF-8 text that ends with a line end (the start of the file and its last byte)."""
    if b"\x00" in head:
        raise LandedFileError(path, "binary content, not a CSV text file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the block edge is fine
            raise LandedFileError(path, f"not UTF-8 text at byte {exc.start}: not a CSV file") from exc
    if last not in (b"\n", b"\r"):  # a file cut off (or still being written) ends inside a line
        raise LandedFileError(path, "the last line has no line end: the file is incomplete (cut off, or still being "
                                    "written: land it under a name starting with '.' and rename it when complete)")


def _csv_frame(path: Path, source: Path | io.BytesIO) -> pd.DataFrame:
    try:
        frame = pd.read_csv(source)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise LandedFileError(path, f"malformed CSV: {str(exc).strip()}") from exc
    except pd.errors.EmptyDataError as exc:
        raise LandedFileError(path, "CSV has no header and no rows") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        raise LandedFileError(path, f"rows have more fields than the header ({len(frame.columns)} names):"
                                    " bad header or delimiter")
    if frame.empty:
        raise LandedFileError(path, "CSV has a header but no rows")
    return frame
