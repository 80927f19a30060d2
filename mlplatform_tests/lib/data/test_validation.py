"""The dataset contract on plain frames and files: exact messages, quarantine and the row invariant."""

import io

import numpy as np
import pandas as pd
import pytest

from mlplatform.lib.data.demo import corrupt, credit_day, write_corrupt, write_frame
from mlplatform.lib.data.landing import LandedFileError, list_landing, partition_key, read_landed
from mlplatform.lib.data.validation import FAILURES_COLUMN, validate_landed
from mlplatform_tests.pipelines import CREDIT

ROW_DEFECTS = {
    "wrong-dtype": "income: not a number",
    "nan": "credit_utilization: not_nullable",
    "inf": "loan_amount: not finite",
    "out-of-range": "age: less_than_or_equal_to(100)",
    "unknown-category": "home_ownership: isin(('rent', 'own', 'mortgage', 'other'))",
    "null-entity": "customer_id: not_nullable",
}


def as_landed_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """What the platform reads back from a CSV file of this frame."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer)


@pytest.mark.parametrize("kind,reason", ROW_DEFECTS.items())
def test_row_defects_quarantine_exactly_the_bad_rows_with_their_reason(kind, reason):
    landed = as_landed_csv(corrupt(credit_day(0, 400), kind, share=0.03))
    result = validate_landed(landed, CREDIT)
    assert len(result.quarantined) == 12
    assert result.rows_in == len(result.valid) + len(result.quarantined) == 400
    assert set(result.quarantined[FAILURES_COLUMN]) == {reason}
    assert result.summary() == f"12 of 400 rows quarantined: {reason} (12 rows)"
    assert result.valid[CREDIT.entity].dtype == "int64" and result.valid["income"].dtype == "float64"


def test_duplicate_keys_quarantine_every_copy_and_name_the_key():
    landed = corrupt(credit_day(0, 400), "duplicate-keys", share=0.02)
    result = validate_landed(landed, CREDIT)
    assert result.summary() == "16 of 400 rows quarantined: (customer_id, event_timestamp): duplicate key (16 rows)"
    assert not result.valid.duplicated([CREDIT.entity, CREDIT.timestamp]).any()
    assert result.rows_in == len(result.valid) + len(result.quarantined)


def test_a_row_with_several_defects_lists_each_once():
    landed = credit_day(0, 50)
    landed.loc[3, "age"] = 150
    landed.loc[3, "purpose"] = "yacht"
    result = validate_landed(landed, CREDIT)
    assert result.quarantined[FAILURES_COLUMN].tolist() == [
        "age: less_than_or_equal_to(100); purpose: isin(('debt_consolidation', 'car', 'home_improvement', "
        "'education', 'medical', 'other'))"]
    assert result.quarantined.index.tolist() == [3]


@pytest.mark.parametrize("kind,message", {
    "missing-column": "missing column 'income'",
    "extra-column": "unexpected column 'notes'",
}.items())
def test_column_defects_reject_the_whole_file(kind, message):
    result = validate_landed(corrupt(credit_day(0, 100), kind), CREDIT)
    assert result.file_errors == [message] and result.summary() == message
    assert result.valid.empty and len(result.quarantined) == result.rows_in == 100
    assert result.bad_share == 1.0


def test_quarantined_rows_keep_the_values_as_landed():
    landed = as_landed_csv(corrupt(credit_day(0, 100), "wrong-dtype", share=0.05))
    result = validate_landed(landed, CREDIT)
    assert set(result.quarantined["income"]) == {"unknown"}


def test_valid_rows_come_out_typed_for_the_contract():
    result = validate_landed(as_landed_csv(credit_day(0, 100)), CREDIT)
    assert str(result.valid[CREDIT.timestamp].dtype) == "datetime64[ns, UTC]"
    assert result.quarantined.empty and result.summary() == "all 100 rows valid"


@pytest.mark.parametrize("kind,message", {
    "empty": "x.csv: file is empty (0 bytes)",
    "truncated-parquet": "x.parquet: not a complete Parquet file (missing PAR1 magic bytes: truncated or corrupt)",
    "truncated-csv": "x.csv: the last line has no line end: the file is incomplete (cut off, or still being written: "
                     "land it under a name starting with '.' and rename it when complete)",
    "bad-header": "x.csv: rows have more fields than the header (1 names): bad header or delimiter",
    "not-data": "x.csv: binary content, not a CSV text file",
    "wide-header": "x.csv: the header line is longer than 1048576 bytes: not a header a contract can have (at most "
                   "1000 columns, Spec.max_columns)",
    "truncated-gzip": "x.csv.gz: not a complete gzip file: Compressed file ended before the end-of-stream marker "
                      "was reached",
}.items())
def test_unreadable_files_raise_a_message_naming_file_and_defect(tmp_path, kind, message):
    path = write_corrupt(credit_day(0, 100), kind, tmp_path / "x")
    with pytest.raises(LandedFileError) as err:
        read_landed(path)
    assert str(err.value) == message


def test_header_only_csv_and_a_corrupt_parquet_body_are_named(tmp_path):
    (tmp_path / "h.csv").write_text("customer_id,event_timestamp\n")
    with pytest.raises(LandedFileError, match=r"^h.csv: CSV has a header but no rows$"):
        read_landed(tmp_path / "h.csv")
    bad = tmp_path / "p.parquet"
    bad.write_bytes(b"PAR1" + np.random.default_rng(0).bytes(500) + b"PAR1")
    with pytest.raises(LandedFileError, match=r"^p.parquet: corrupt Parquet file: "):
        read_landed(bad)


def test_partition_keys_come_from_file_names_and_only_colliding_files_are_refused(tmp_path):
    assert partition_key(tmp_path / "2026-01-01 batch#2.csv") == "2026-01-01_batch_2"
    assert partition_key(tmp_path / "2026-01-02.CSV.GZ") == "2026-01-02"
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / ".a.csv.tmp").write_text("being written")
    (tmp_path / "notes.txt").write_text("ignored")
    assert list(list_landing(tmp_path, ("csv", "parquet")).files) == ["a"]
    (tmp_path / "a.parquet").write_bytes(b"")
    (tmp_path / "ab c.csv").write_text("x\n1\n")
    (tmp_path / "ab_c.csv").write_text("x\n1\n")
    (tmp_path / "UPPER.CSV").write_text("x\n1\n")
    listing = list_landing(tmp_path, ("csv", "parquet"))
    assert list(listing.files) == ["UPPER"]  # every file that does not collide is ingested
    assert listing.refused == {
        "a.csv": "a.csv, a.parquet map to one partition 'a': rename all but one",
        "a.parquet": "a.csv, a.parquet map to one partition 'a': rename all but one",
        "ab c.csv": "ab c.csv, ab_c.csv map to one partition 'ab_c': rename all but one",
        "ab_c.csv": "ab c.csv, ab_c.csv map to one partition 'ab_c': rename all but one"}
    assert listing.ignored == {
        ".a.csv.tmp": "hidden: a file being written is named with a leading '.' until complete",
        "notes.txt": "not a landed file type (expected .csv, .csv.gz, .parquet, in any case)"}


def test_a_gzipped_csv_reads_like_the_csv_and_a_cut_one_is_named(tmp_path):
    import gzip

    frame = credit_day(0, 50)
    plain = write_frame(frame, tmp_path / "d.csv")
    packed = tmp_path / "d2.CSV.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(read_landed(packed), read_landed(plain))
    cut = tmp_path / "d3.csv.gz"
    cut.write_bytes(packed.read_bytes()[:200])
    with pytest.raises(LandedFileError, match="^d3.csv.gz: not a complete gzip file"):
        read_landed(cut)


def test_a_parquet_file_without_rows_is_named(tmp_path):
    credit_day(0, 5).iloc[0:0].to_parquet(tmp_path / "e.parquet")
    with pytest.raises(LandedFileError, match=r"^e.parquet: Parquet file has no rows$"):
        read_landed(tmp_path / "e.parquet")


def test_nullable_columns_accept_nulls_but_still_refuse_infinities():
    from mlplatform.specs import Numeric, Spec

    spec = Spec(name="n", entity="id", timestamp="ts", label="y",
                numeric=(Numeric("x", nullable=True), Numeric("k", 0, 9, integer=True, nullable=True)))
    frame = pd.DataFrame({"id": [1, 2, 3], "ts": ["2026-01-01T00:00:00Z"] * 3, "x": [1.0, np.nan, np.inf],
                          "k": [1, None, 2], "y": [0, 1, 0]})
    result = validate_landed(frame, spec)
    assert result.quarantined.index.tolist() == [2] and result.summary().endswith("x: not finite (1 rows)")
    assert str(result.valid["k"].dtype) == "Int64"


def test_symbolic_links_are_refused_by_name_never_read_and_never_copied(tmp_path):
    from mlplatform.resources import Quarantine
    from mlplatform_tests.pipelines import CREDIT

    secret = tmp_path / "secret"
    secret.write_text("customer_id,event_timestamp\n1,2026-01-01\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "keys.csv").symlink_to(secret)
    (landing / "folder.csv").mkdir()
    (landing / "ok.csv").write_text("x\n1\n")
    assert list(list_landing(landing, ("csv",)).files) == ["ok"]
    refused = list_landing(landing, ("csv",)).refused
    assert sorted(refused) == ["folder.csv", "keys.csv"] and all("never followed" in r for r in refused.values())
    with pytest.raises(LandedFileError, match="^keys.csv: not a regular file: symbolic links"):
        read_landed(landing / "keys.csv")
    quarantine = Quarantine(root=str(tmp_path / "quarantine"))
    assert quarantine.keep_file(CREDIT, "keys", landing / "keys.csv") is None
    assert not (tmp_path / "quarantine").exists()


def test_what_the_platform_writes_is_not_world_readable(tmp_path):
    import os
    import stat

    import demo.definitions  # noqa: F401  (loading a project's code location sets the process's file mode mask)
    from mlplatform.resources import Quarantine
    from mlplatform_tests.pipelines import CREDIT

    path = Quarantine(root=str(tmp_path / "quarantine")).keep_rows(CREDIT, "p", credit_day(0, 3))
    for made in (path, path.parent, path.parent.parent):
        mode = stat.S_IMODE(os.stat(made).st_mode)
        assert mode & 0o007 == 0, f"{made} is {oct(mode)}"


def test_a_file_over_a_limit_is_refused_before_it_is_parsed_naming_the_limit(tmp_path):
    import gzip

    from mlplatform.lib.data.landing import Limits

    wide = tmp_path / "wide.csv"
    with wide.open("w") as out:  # a 1M-column header (parsing it took minutes)
        out.write(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n")
    with pytest.raises(LandedFileError, match=r"^wide.csv: the header line is longer than 1048576 bytes"):
        read_landed(wide)  # from the first MB of the file: nothing else of it is read
    (tmp_path / "cols.csv").write_text(",".join(f"c{i}" for i in range(1001)) + "\n" + ",".join("1" * 1001) + "\n")
    with pytest.raises(LandedFileError, match=r"^cols.csv: 1001 columns: more than the limit of 1000 "
                                              r"\(Spec.max_columns\)$"):
        read_landed(tmp_path / "cols.csv")
    frame = credit_day(0, 50)
    csv, parquet = write_frame(frame, tmp_path / "d.csv"), write_frame(frame, tmp_path / "d.parquet")
    for path in (csv, parquet):
        with pytest.raises(LandedFileError, match=rf"^{path.name}: 50 rows: more than the limit of 10"):
            read_landed(path, Limits(max_rows=10))
        with pytest.raises(LandedFileError, match=r"bytes: more than the limit of 100 \(Spec.max_file_bytes\)$"):
            read_landed(path, Limits(max_bytes=100))
    with pytest.raises(LandedFileError, match=r"^d.parquet: 14 columns: more than the limit of 5"):
        read_landed(parquet, Limits(max_columns=5))
    bomb = tmp_path / "bomb.csv.gz"  # 10 MB of zeros inflate from a few kB
    bomb.write_bytes(gzip.compress(b"x\n" + b"0\n" * 5_000_000))
    with pytest.raises(LandedFileError, match="more than 1000000 bytes once decompressed"):
        read_landed(bomb, Limits(max_bytes=1_000_000))
    assert len(read_landed(csv)) == len(read_landed(parquet)) == 50  # within the defaults
