"""A user's own tables (cobra.tables): ids, timestamps, item tables, vectors and every error a person may meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cobra.movielens import DataError
from cobra.tables import Columns, read_table, read_tables


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(ml) -> list[tuple[int, int, float, int]]:
    """The interactions as (user, item, rating, timestamp) tuples, in their stored order."""
    frame = ml.interactions
    return list(zip(frame["user"].tolist(), frame["item"].tolist(), frame["rating"].tolist(),
                    frame["timestamp"].tolist(), strict=True))


# ------------------------------------------------------------------------------------------------ ids
def test_integer_ids_are_renumbered_and_sorted(tmp_path):
    # raw users 70 and 5, raw items 900, 30, 400: renumbered in ascending raw-id order
    path = write(tmp_path / "log.csv", "user,item,timestamp\n70,900,50\n5,400,20\n70,30,10\n5,30,20\n70,400,50\n")
    ml, vectors = read_tables("mine", path)
    assert vectors is None and ml.timed and ml.source == "local" and ml.name == "mine"
    assert (ml.num_users, ml.num_items) == (2, 3)
    assert ml.user_map.tolist() == [-1, 5, 70] and ml.item_map.tolist() == [-1, 30, 400, 900]
    assert ml.items["item"].tolist() == [1, 2, 3] and ml.items["raw_id"].tolist() == [30, 400, 900]
    # sorted by (user, timestamp, item): user 5's tie at t=20 is broken by item; user 70's tie at t=50 too
    assert rows(ml) == [(1, 1, 1.0, 20), (1, 2, 1.0, 20), (2, 1, 1.0, 10), (2, 2, 1.0, 50), (2, 3, 1.0, 50)]
    assert ml.interactions["rating"].dtype == np.float32
    assert ml.interactions["timestamp"].dtype == np.int64
    assert "key" not in ml.items


def test_string_ids_numbered_in_sorted_order_with_keys(tmp_path):
    path = write(tmp_path / "log.csv",
                 "user,item,timestamp\nzoe,tt9,3\nann,tt10,1\nzoe,tt10,2\nann,aa,5\nbob,tt9,4\n")
    ml, _ = read_tables("mine", path)
    # users ann < bob < zoe; items 'aa' < 'tt10' < 'tt9' (string order, not numeric)
    assert (ml.num_users, ml.num_items) == (3, 3)
    assert ml.items["key"].tolist() == ["aa", "tt10", "tt9"]
    assert rows(ml) == [(1, 2, 1.0, 1), (1, 1, 1.0, 5), (2, 3, 1.0, 4), (3, 2, 1.0, 2), (3, 3, 1.0, 3)]
    assert ml.items["title"].tolist() == ["aa", "tt10", "tt9"]  # no item table: the key is the only text


def test_ratings_are_read_and_default_to_one(tmp_path):
    rated = write(tmp_path / "rated.csv", "user,item,rating,timestamp\n1,1,4.5,1\n1,2,2,2\n")
    ml, _ = read_tables("r", rated)
    assert ml.interactions["rating"].tolist() == [4.5, 2.0]
    unrated = write(tmp_path / "unrated.csv", "user,item,timestamp\n1,1,1\n1,2,2\n")
    ml, _ = read_tables("u", unrated)
    assert ml.interactions["rating"].tolist() == [1.0, 1.0]
    assert ml.interactions["rating"].dtype == np.float32


def test_other_column_names_and_tsv(tmp_path):
    path = write(tmp_path / "log.tsv", "uid\tsku\twhen\tstars\n2\t8\t10\t3\n1\t8\t20\t5\n")
    columns = Columns(user="uid", item="sku", timestamp="when", rating="stars")
    ml, _ = read_tables("mine", path, columns=columns)
    assert rows(ml) == [(1, 1, 5.0, 20), (2, 1, 3.0, 10)]


def test_gzipped_csv_is_read(tmp_path):
    path = tmp_path / "log.csv.gz"
    pd.DataFrame({"user": [1, 2], "item": [3, 4], "timestamp": [5, 6]}).to_csv(path, index=False)
    ml, _ = read_tables("mine", path)
    assert rows(ml) == [(1, 1, 1.0, 5), (2, 2, 1.0, 6)]


# ----------------------------------------------------------------------------------------- timestamps
def test_timestamps_integer_seconds_and_whole_floats(tmp_path):
    ints = write(tmp_path / "ints.csv", "user,item,timestamp\n1,1,1600000000\n1,2,1500000000\n")
    floats = write(tmp_path / "floats.csv", "user,item,timestamp\n1,1,1600000000.0\n1,2,1500000000.0\n")
    a, _ = read_tables("a", ints)
    b, _ = read_tables("b", floats)
    assert rows(a) == rows(b) == [(1, 2, 1.0, 1500000000), (1, 1, 1.0, 1600000000)]


def test_timestamps_datetime64_in_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    stamps = pd.to_datetime(["2015-03-31 10:00:00", "2015-03-31 09:59:59"])
    pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": stamps}).to_parquet(path, index=False)
    ml, _ = read_tables("mine", path)
    t = 1427796000  # 2015-03-31T10:00:00Z
    assert rows(ml) == [(1, 2, 1.0, t - 1), (1, 1, 1.0, t)]


def test_timestamps_iso_date_strings_in_csv(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,2015-03-31 10:00:00\n1,2,2015-03-30 10:00:00\n")
    ml, _ = read_tables("mine", path)
    assert rows(ml) == [(1, 2, 1.0, 1427796000 - 86400), (1, 1, 1.0, 1427796000)]


def test_no_timestamp_column_keeps_file_order(tmp_path):
    # user 1's events in file order: items 30, 10, 20 (not sorted by item); users interleaved
    path = write(tmp_path / "log.csv", "user,item\n1,30\n2,10\n1,10\n2,30\n1,20\n")
    ml, _ = read_tables("mine", path)
    assert ml.timed is False
    frame = ml.interactions
    assert frame[frame["user"] == 1]["item"].tolist() == [3, 1, 2]
    assert frame[frame["user"] == 2]["item"].tolist() == [1, 3]
    assert frame["user"].tolist() == [1, 1, 1, 2, 2]


# ------------------------------------------------------------------------------------------ item table
def test_item_table_fields_and_unrated_items_dropped(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,20,1\n1,10,2\n")
    items = write(tmp_path / "items.csv",
                  "item,title,year,genres,tags\n30,Unrated,1999,Drama,x\n20,Twenty,2001,Action|Comedy,fun\n"
                  "10,Ten,,Drama,\n")
    ml, _ = read_tables("mine", inter, items)
    assert ml.num_items == 2 and ml.items["raw_id"].tolist() == [10, 20]
    assert ml.items["title"].tolist() == ["Ten", "Twenty"]
    assert ml.items["genres"].tolist() == ["Drama", "Action|Comedy"]
    assert ml.items["year"].isna().tolist() == [True, False] and int(ml.items["year"].iloc[1]) == 2001
    assert ml.items["tags"].tolist() == ["", "fun"]


def test_item_table_with_string_keys(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\nu,b,1\nu,a,2\n")
    items = write(tmp_path / "items.csv", "sku,title\nzz,Nobody rated me\nb,Bee\na,Ay\n")
    ml, _ = read_tables("mine", inter, items, columns=Columns(item_key="sku"))
    assert ml.items["key"].tolist() == ["a", "b"] and ml.items["title"].tolist() == ["Ay", "Bee"]
    assert rows(ml) == [(1, 2, 1.0, 1), (1, 1, 1.0, 2)]


# ------------------------------------------------------------------------------------------- vectors
def test_vectors_reordered_to_item_ids_and_normalised(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,30,1\n1,10,2\n2,20,3\n")
    # table order 20, 99 (nobody rated it), 30, 10; raw-id order 10, 20, 30 -> items 1, 2, 3
    items = write(tmp_path / "items.csv", "item,title\n20,B\n99,unrated\n30,C\n10,A\n")
    table_rows = np.array([[0, 3, 4], [9, 9, 9], [2, 0, 0], [0, 0, 5]], dtype=np.float64)
    np.save(tmp_path / "vec.npy", table_rows)
    ml, vectors = read_tables("mine", inter, items, tmp_path / "vec.npy")
    assert ml.item_map.tolist() == [-1, 10, 20, 30]
    assert vectors.dtype == np.float32 and vectors.shape == (3, 3)
    expected = np.array([[0, 0, 1], [0, 0.6, 0.8], [1, 0, 0]], dtype=np.float32)  # items 10, 20, 30
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_vectors_with_string_keys_and_several_unrated_items(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\nu1,b,1\nu1,a,2\nu2,c,3\n")
    items = write(tmp_path / "items.csv", "item\nzz\nc\nyy\na\nb\n")  # two unrated keys
    np.save(tmp_path / "vec.npy", np.array([[1, 1], [0, 2], [1, 1], [3, 0], [0, -4]], dtype=np.float32))
    ml, vectors = read_tables("mine", inter, items, tmp_path / "vec.npy")
    assert ml.items["key"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(vectors, [[1, 0], [0, -1], [0, 1]], atol=1e-6)


# -------------------------------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"interactions file .*nope\.csv does not exist"):
        read_tables("mine", tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path, "interactions")


def test_unknown_suffix(tmp_path):
    path = write(tmp_path / "log.json", "{}")
    with pytest.raises(DataError, match=r"unknown format '\.json'.*\.csv"):
        read_tables("mine", path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"cannot read interactions file .*log\.parquet"):
        read_tables("mine", path)
    gz = tmp_path / "log.csv.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        read_tables("mine", gz)


def test_empty_file(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n")
    with pytest.raises(DataError, match="no rows"):
        read_tables("mine", path)


@pytest.mark.parametrize(("field", "flag"), [("user", "--user-col"), ("item", "--item-col")])
def test_missing_user_or_item_column_names_column_and_flag(tmp_path, field, flag):
    header = "customer,item,timestamp" if field == "user" else "user,product,timestamp"
    path = write(tmp_path / "log.csv", f"{header}\n1,1,1\n")
    with pytest.raises(DataError, match=rf"no column '{field}'.*{flag}") as err:
        read_tables("mine", path)
    assert ("customer" if field == "user" else "product") in str(err.value)  # lists the columns it has


def test_empty_user_cell_names_row(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n2,1,2\n,2,3\n")
    with pytest.raises(DataError, match=r"row 3 has no 'user'"):
        read_tables("mine", path)
    strings = write(tmp_path / "strings.csv", "user,item,timestamp\nann,x,1\n,y,2\n")
    with pytest.raises(DataError, match=r"row 2 has no 'user'"):
        read_tables("mine", strings)


def test_non_numeric_timestamp_names_row_and_value(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,100\n1,2,200\n1,3,soon\n")
    with pytest.raises(DataError, match=r"row 3 has timestamp 'soon'"):
        read_tables("mine", path)


def test_bad_date_string_names_its_own_row(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,2015-03-30\n1,2,2015-03-31\n1,3,soon\n")
    with pytest.raises(DataError, match=r"row 3 has timestamp 'soon'"):
        read_tables("mine", path)


def test_negative_timestamp(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,100\n1,2,-5\n")
    with pytest.raises(DataError, match=r"row 2 has a negative timestamp \(-5\)"):
        read_tables("mine", path)


def test_timezone_aware_datetimes_in_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    stamps = pd.to_datetime(["2015-03-31 12:00:00", "2015-03-31 11:00:00"]).tz_localize("Europe/Berlin")
    pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": stamps}).to_parquet(path, index=False)
    ml, _ = read_tables("mine", path)
    assert ml.interactions["timestamp"].tolist() == [1427792400, 1427796000]  # 09:00Z, 10:00Z


def test_fractional_item_id(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n1,2.5,2\n")
    with pytest.raises(DataError, match=r"row 2 has item 2\.5, not a whole number"):  # printed plainly
        read_tables("mine", path)


def test_non_numeric_rating(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,rating,timestamp\n1,1,4,1\n1,2,good,2\n")
    with pytest.raises(DataError, match=r"row 2 has rating 'good'"):
        read_tables("mine", path)


def test_duplicate_item_in_item_table_names_row(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n1,2,2\n")
    items = write(tmp_path / "items.csv", "item,title\n1,A\n2,B\n1,A again\n")
    with pytest.raises(DataError, match=r"items\.csv: row 3 repeats item 1;"):  # the value printed plainly
        read_tables("mine", inter, items)


def test_interaction_with_item_missing_from_item_table(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n1,7,2\n")
    items = write(tmp_path / "items.csv", "item,title\n1,A\n2,B\n")
    with pytest.raises(DataError, match=r"log\.csv: row 2 names item 7.*does not list"):
        read_tables("mine", inter, items)


def test_item_table_without_its_key_column(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n")
    items = write(tmp_path / "items.csv", "movie,title\n1,A\n")
    with pytest.raises(DataError, match=r"no column 'item'.*--item-key-col"):
        read_tables("mine", inter, items)


def test_text_keys_for_numeric_ids_refused(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n")
    items = write(tmp_path / "items.csv", "item,title\nx1,A\n")
    with pytest.raises(DataError, match="holds text"):
        read_tables("mine", inter, items)


def test_vectors_without_item_table(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n")
    np.save(tmp_path / "vec.npy", np.ones((1, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"need an item table \(--items\)"):
        read_tables("mine", inter, None, tmp_path / "vec.npy")


def test_vectors_with_wrong_row_count(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n1,2,2\n")
    items = write(tmp_path / "items.csv", "item\n1\n2\n")
    np.save(tmp_path / "vec.npy", np.ones((3, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"shape \(3, 4\).*\(2 rows\)"):
        read_tables("mine", inter, items, tmp_path / "vec.npy")


def test_vectors_unreadable(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n")
    items = write(tmp_path / "items.csv", "item\n1\n")
    bad = write(tmp_path / "vec.npy", "not numpy")
    with pytest.raises(DataError, match="cannot read item vectors"):
        read_tables("mine", inter, items, bad)


def test_zero_vector_row(tmp_path):
    inter = write(tmp_path / "log.csv", "user,item,timestamp\n1,1,1\n1,2,2\n")
    items = write(tmp_path / "items.csv", "item\n2\n1\n")
    np.save(tmp_path / "vec.npy", np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    with pytest.raises(DataError, match=r"row 2 is zero or not finite"):  # the table's row 2 (item 1)
        read_tables("mine", inter, items, tmp_path / "vec.npy")
