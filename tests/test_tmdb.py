"""TMDB client against local HTTP servers: success, cache, 401, 404, 429, timeouts, token hygiene, bad input."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import threading
import time
import traceback
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from cobra.text import item_texts
from cobra.tmdb import (
    BASE_URL_ENV as TMDB_BASE_URL_ENV,
)
from cobra.tmdb import (
    TOKEN_ENV,
    TmdbAuthError,
    TmdbClient,
    TmdbConfig,
    TmdbError,
    TmdbNotFound,
    _RedirectHandler,
    enrich_items,
    movie_fields,
)

TOKEN = "s3cret-TOKEN-do-not-leak-0123456789"

TOY_STORY = {
    "id": 862, "title": "Toy Story", "overview": "Led by Woody, Andy's toys live happily in his room.",
    "credits": {
        "cast": [{"name": f"Actor {i}", "order": i} for i in range(6, 0, -1)]
        + [{"name": "Tom Hanks", "order": 0}],
        "crew": [{"name": "John Lasseter", "job": "Director"}, {"name": "Someone", "job": "Editor"}],
    },
    "keywords": {"keywords": [{"id": 1, "name": "toy"}, {"id": 2, "name": "friendship"}]},
}
HEAT = {"id": 949, "title": "Heat", "overview": "A group of thieves.", "credits": {"cast": [], "crew": []},
        "keywords": {"keywords": []}}


class FakeTmdb:
    """Scripted TMDB: ``routes[path]`` is a list of responses; the last one repeats.

    A response is ``status``, a JSON ``body`` (or ``raw`` bytes sent as they are), extra ``headers``,
    a ``delay`` before answering, and ``drip`` seconds between single bytes from ``drip_from``
    (``"headers"``: the whole answer, ``"body"``: after the headers), at most ``drip_limit`` of them.
    """

    def __init__(self):
        self.routes: dict[str, list[dict]] = {}
        self.log: list[tuple[str, dict, str | None]] = []
        self.lock = threading.Lock()
        self.url = ""

    def add(self, path, status=200, body=None, headers=None, delay=0.0, *, raw=None, drip=0.0, drip_from="body",
            drip_limit=40):
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        self.routes.setdefault(path, []).append(
            {"status": status, "data": data, "headers": headers or {}, "delay": delay, "drip": drip,
             "drip_from": drip_from, "drip_limit": drip_limit})

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        path = url.path.removeprefix("/3")
        with self.lock:
            self.log.append((path, dict(urllib.parse.parse_qsl(url.query)), handler.headers.get("Authorization")))
            script = self.routes.get(path)
            if not script:
                answer = {"status": 404, "data": b'{"status_code": 34}', "headers": {}, "delay": 0.0, "drip": 0.0}
            else:
                answer = script.pop(0) if len(script) > 1 else script[0]
        if answer["delay"]:
            time.sleep(answer["delay"])
        data = answer["data"]
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))} | answer["headers"]
        try:
            if answer["drip"]:
                self._drip(handler, answer, headers, data)
                return
            handler.send_response(answer["status"])
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and hung up

    @staticmethod
    def _drip(handler, answer, headers, data):
        """Write the answer by hand, one byte every ``drip`` seconds (at most ``drip_limit`` bytes, then hang up)."""
        head = f"HTTP/1.1 {answer['status']} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        whole = head.encode() + data
        start = 0 if answer["drip_from"] == "headers" else len(head)
        handler.wfile.write(whole[:start])
        handler.wfile.flush()
        for i in range(start, min(len(whole), start + answer["drip_limit"])):
            time.sleep(answer["drip"])
            handler.wfile.write(whole[i:i + 1])
            handler.wfile.flush()
        handler.close_connection = True


@contextlib.contextmanager
def _serving(fake: FakeTmdb):
    """Run ``fake`` on 127.0.0.1 (a free port) in a thread; ``fake.url`` is its ``/3`` root."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            fake.respond(self)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/3"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    with _serving(FakeTmdb()) as fake:
        yield fake


@pytest.fixture
def other_server():
    """A second origin: same host, another port."""
    with _serving(FakeTmdb()) as fake:
        yield fake


@pytest.fixture
def make_client(server, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    sleeps: list[float] = []

    def make(token=TOKEN, **cfg):
        settings = {"base_url": server.url, "min_interval": 0.0, "backoff": 0.01, "timeout": 2.0,
                    "max_retries": 3, "cache_dir": tmp_path / "tmdb"}
        settings.update(cfg)
        client = TmdbClient(token, config=TmdbConfig(**settings), sleep=sleeps.append)
        client.sleeps = sleeps  # type: ignore[attr-defined]
        return client

    return make


def _items(**extra):
    frame = pd.DataFrame({
        "item": [1, 2], "title": ["Toy Story", "Heat"], "year": pd.array([1995, 1995], dtype="Int64"),
        "genres": ["Animation|Children's|Comedy", "Action|Crime|Thriller"],
        "tmdb_id": pd.array([862, None], dtype="Int64"),
    })
    for key, value in extra.items():
        frame[key] = value
    return frame


def _serve_two(server):
    server.add("/movie/862", body=TOY_STORY)
    server.add("/movie/949", body=HEAT)
    server.add("/search/movie", body={"results": [{"id": 949, "title": "Heat"}]})


def test_success_path_and_text(server, make_client):
    _serve_two(server)
    client = make_client()
    out = enrich_items(_items(), client, progress=False)
    assert set(out) == {1, 2}
    toy = out[1]
    assert toy["director"] == "John Lasseter"
    assert toy["cast"] == ["Tom Hanks", "Actor 1", "Actor 2", "Actor 3", "Actor 4"]  # top 5 by billing order
    assert toy["keywords"] == ["toy", "friendship"]
    assert out[2]["tmdb_id"] == 949
    # links.csv id used directly for item 1; title + year search for item 2
    paths = [p for p, _, _ in server.log]
    assert paths == ["/movie/862", "/search/movie", "/movie/949"]
    search_query = server.log[1][1]
    assert search_query["query"] == "Heat" and search_query["year"] == "1995"
    assert server.log[0][1]["append_to_response"] == "credits,keywords"
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in server.log)
    text = item_texts(_items(), out)[0]
    assert "Director: John Lasseter." in text and "Cast: Tom Hanks, Actor 1" in text and "Overview: Led by" in text


def test_cached_rerun_makes_no_request(server, make_client):
    _serve_two(server)
    first = enrich_items(_items(), make_client(), progress=False)
    before = len(server.log)
    again = make_client(token=None)  # not even a token is needed when everything is cached
    assert enrich_items(_items(), again, progress=False) == first
    assert len(server.log) == before and again.requests == 0


def test_401_stops_with_advice(server, make_client):
    server.add("/movie/862", status=401, body={"status_message": "Invalid API key"})
    client = make_client()
    with pytest.raises(TmdbAuthError, match="401") as info:
        enrich_items(_items(), client, progress=False)
    assert TOKEN_ENV in str(info.value) and "themoviedb.org/settings/api" in str(info.value)
    assert len(server.log) == 1  # never retried


def test_missing_token_needs_env_var(server, make_client):
    with pytest.raises(TmdbAuthError, match=TOKEN_ENV):
        make_client(token=None).movie(862)
    assert server.log == []


def test_404_skips_and_records(server, make_client):
    server.add("/search/movie", body={"results": []})  # Heat finds nothing either
    client = make_client()
    out = enrich_items(_items(tmdb_id=pd.array([999, None], dtype="Int64")), client, progress=False)
    assert out == {}
    assert "404" in client.skipped[1] and "999" in client.skipped[1]
    assert "no TMDB search match" in client.skipped[2]
    # the 404 and the empty searches are cached: a rerun asks nothing
    before = len(server.log)
    again = make_client()
    enrich_items(_items(tmdb_id=pd.array([999, None], dtype="Int64")), again, progress=False)
    assert len(server.log) == before and set(again.skipped) == {1, 2}
    with pytest.raises(TmdbNotFound):
        again.movie(999)


def test_429_honours_retry_after(server, make_client):
    server.add("/movie/862", status=429, headers={"Retry-After": "3"})
    server.add("/movie/862", body=TOY_STORY)
    client = make_client()
    assert movie_fields(client.movie(862))["director"] == "John Lasseter"
    assert client.sleeps == [3.0]  # Retry-After, not the 0.01 s back-off
    assert len(server.log) == 2


def test_5xx_backs_off_exponentially_then_fails(server, make_client):
    server.add("/movie/862", status=503)
    client = make_client(max_retries=3, backoff=0.5)
    with pytest.raises(TmdbError, match="after 4 attempts.*HTTP 503"):
        client.movie(862)
    assert client.sleeps == [0.5, 1.0, 2.0]
    assert len(server.log) == 4
    assert not list((client.cache_dir).glob("*.json"))  # failures are not cached


def test_timeout_then_retry(server, make_client):
    server.add("/movie/862", body=TOY_STORY, delay=1.0)
    server.add("/movie/862", body=TOY_STORY)
    client = make_client(timeout=0.25)
    assert client.movie(862)["id"] == 862
    assert len(server.log) == 2 and len(client.sleeps) == 1


def test_rate_limit_spaces_requests(server, make_client):
    _serve_two(server)
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    client = TmdbClient(TOKEN, config=TmdbConfig(base_url=server.url, min_interval=0.5,
                                                 cache_dir=make_client().cache_dir),
                        sleep=sleep, clock=lambda: now[0])
    client.movie(862)
    client.movie(949)
    client.movie(862)  # cached: no request, no wait
    assert sleeps == [0.5] and client.requests == 2


def test_token_never_leaks(server, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    server.add("/movie/1", status=503)
    server.add("/movie/2", status=401)
    server.add("/movie/3", status=429, headers={"Retry-After": "0"})
    server.add("/movie/3", body=TOY_STORY)
    server.add("/movie/4", status=418)
    client = make_client(max_retries=1)
    texts = [repr(client), str(client.config)]
    for tmdb_id in (1, 2, 4):
        with pytest.raises(TmdbError) as info:
            client.movie(tmdb_id)
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    client.movie(3)
    texts.append(caplog.text)
    texts += [p.read_text() for p in client.cache_dir.rglob("*.json")]
    assert caplog.text  # something was logged, and it holds no token
    assert all(TOKEN not in t for t in texts)
    assert all(TOKEN not in " ".join(map(str, q.values())) for _, q, _ in server.log)  # never in a URL


# --------------------------------------------------------------------------- robustness against bad input


@pytest.mark.parametrize("token", [f"{TOKEN}\n", f"  {TOKEN}\r\n", f"\t{TOKEN} "])
def test_token_surrounding_whitespace_is_stripped(server, make_client, token):
    server.add("/movie/862", body=TOY_STORY)
    assert make_client(token=token).movie(862)["id"] == 862
    assert server.log[0][2] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("inner, kind", [("\n", "control"), ("\x00", "control"), (" ", "space"), ("é", "non-ASCII")])
def test_token_with_inner_bad_character_is_refused(server, make_client, inner, kind):
    client = make_client(token=TOKEN[:10] + inner + TOKEN[10:])
    with pytest.raises(TmdbAuthError, match=f"{kind}.*position 11.*{TOKEN_ENV}") as info:
        client.movie(862)
    texts = [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value)), repr(client)]
    assert not any(part in t for t in texts for part in (TOKEN[:10], TOKEN[10:]))
    assert server.log == []  # refused before any request


def test_blank_token_counts_as_missing(server, make_client, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, " \n")
    client = TmdbClient(config=make_client().config)
    assert "token=missing" in repr(client)
    with pytest.raises(TmdbAuthError, match=f"no TMDB token.*{TOKEN_ENV}"):
        client.movie(862)
    assert server.log == []


@pytest.mark.parametrize("retry_after", ["86400", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_capped_at_max_backoff(server, make_client, retry_after):
    server.add("/movie/862", status=429, headers={"Retry-After": retry_after})
    server.add("/movie/862", body=TOY_STORY)
    client = make_client(max_backoff=5.0)
    assert client.movie(862)["id"] == 862
    assert client.sleeps == [5.0]  # not a day, not until 2099


@pytest.mark.parametrize("retry_after, want", [
    ("soon", 0.01), ("inf", 0.01), ("nan", 0.01), ("Mon, 99 Foo 20xx", 0.01), ("-3", 0.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
])
def test_unusable_retry_after_falls_back_to_backoff(server, make_client, retry_after, want):
    server.add("/movie/862", status=429, headers={"Retry-After": retry_after})
    server.add("/movie/862", body=TOY_STORY)
    client = make_client()
    assert client.movie(862)["id"] == 862
    assert client.sleeps == [want]
    assert len(server.log) == 2


def test_cross_origin_redirect_drops_token(server, other_server, make_client):
    server.add("/movie/862", status=302, headers={"Location": f"{other_server.url}/movie/862"})
    other_server.add("/movie/862", body=TOY_STORY)
    server.add("/movie/949", status=301, headers={"Location": "/3/movie/950"})  # same origin
    server.add("/movie/950", body=HEAT)
    client = make_client()
    assert client.movie(862)["id"] == 862
    assert server.log[0][2] == f"Bearer {TOKEN}"
    assert other_server.log == [("/movie/862", other_server.log[0][1], None)]  # another port: no token
    assert client.movie(949)["id"] == 949
    assert [auth for path, _, auth in server.log if path == "/movie/950"] == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("new_url, kept", [
    ("https://api.themoviedb.org:443/3/movie/2", True),  # default port spelled out: same origin
    ("https://API.themoviedb.org/3/movie/2", True),
    ("http://api.themoviedb.org/3/movie/2", False),  # scheme
    ("https://cdn.example.org/3/movie/2", False),  # host
    ("https://api.themoviedb.org:8443/3/movie/2", False),  # port
])
def test_redirect_handler_origin_rule(new_url, kept):
    req = urllib.request.Request("https://api.themoviedb.org/3/movie/1", headers={"Authorization": "Bearer x"})
    req.deadline = 123.0
    new = _RedirectHandler().redirect_request(req, None, 302, "Found", {}, new_url)
    assert new.has_header("Authorization") is kept and new.deadline == 123.0
    assert _RedirectHandler().redirect_request(req, None, 302, "Found", {}, "ftp://example.org/x") is None


def test_redirect_not_followed_is_a_clear_error(server, make_client):
    server.add("/movie/862", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(TmdbError, match="HTTP 302.*not followed"):
        make_client().movie(862)
    assert len(server.log) == 1


@pytest.mark.parametrize("drip_from", ["body", "headers"])
def test_dripping_server_cannot_beat_the_timeout(server, make_client, drip_from):
    # one byte every 0.3 s would keep a plain socket timeout of 0.5 s happy for 40 bytes (12 s per attempt)
    server.add("/movie/862", body=TOY_STORY, drip=0.3, drip_from=drip_from)
    client = make_client(timeout=0.5, max_retries=1)
    start = time.monotonic()
    with pytest.raises(TmdbError, match="after 2 attempts.*timeout after 0.5 s"):
        client.movie(862)
    assert time.monotonic() - start < 2.5
    assert len(server.log) == 2


@pytest.mark.parametrize("drip_from", ["body", "headers"])
def test_slow_answer_within_the_deadline_is_read(server, make_client, drip_from):
    server.add("/movie/862", raw=b'{"id": 862}', drip=0.005, drip_from=drip_from, drip_limit=200)
    assert make_client(timeout=5.0).movie(862) == {"id": 862}


@pytest.mark.parametrize("raw, what", [
    (b"null", "null instead of a JSON object"),
    (b"[1, 2]", "a list instead of a JSON object"),
    (b'"Toy Story"', "a string instead of a JSON object"),
    (b"<html>Service busy</html>", r"a body that is not JSON \(text/html, 25 bytes\)"),
    (b"\xff\xfe{}", "a body that is not JSON"),
    (b"", "a body that is not JSON"),
])
def test_malformed_answer_is_a_clear_error(server, make_client, raw, what):
    headers = {"Content-Type": "text/html"} if raw.startswith(b"<") else {}
    server.add("/movie/862", raw=raw, headers=headers)
    client = make_client()
    with pytest.raises(TmdbError, match=f"GET /movie/862 answered {what}") as info:
        enrich_items(_items(), client, progress=False)
    assert type(info.value) is TmdbError and info.value.__cause__ is None
    assert TMDB_BASE_URL_ENV in str(info.value)
    assert len(server.log) == 1  # not retried
    assert not list(client.cache_dir.glob("*.json"))  # not cached


@pytest.mark.parametrize("body, what", [
    ({"results": [{"title": "Heat"}]}, "first search result has no 'id'"),
    ({"results": [{"id": None, "title": "Heat"}]}, "'id' is null, not a positive integer"),
    ({"results": [{"id": "949x"}]}, "'id' is a string, not a positive integer"),
    ({"results": [["Heat", 949]]}, "first search result is a list, not an object"),
    ({"results": "Heat"}, "'results' is a string, not a list"),
])
def test_malformed_search_answer_is_a_clear_error_and_not_cached(server, make_client, body, what):
    server.add("/movie/862", body=TOY_STORY)
    server.add("/movie/949", body=HEAT)
    server.add("/search/movie", body=body)
    server.add("/search/movie", body={"results": [{"id": 949, "title": "Heat"}]})
    client = make_client()
    with pytest.raises(TmdbError, match=what):
        enrich_items(_items(), client, progress=False)
    # the bad answer was not cached: the rerun asks again and gets the good one
    assert set(enrich_items(_items(), make_client(), progress=False)) == {1, 2}


def test_malformed_cache_file_is_fetched_again(server, make_client):
    server.add("/movie/862", body=TOY_STORY)
    client = make_client()
    client.movie(862)
    (file,) = client.cache_dir.glob("movie_862*.json")
    for bad in ({"status": 200, "body": None}, {"status": 200, "body": [1]}, [1, 2], {"status": "x", "body": {}}):
        file.write_text(json.dumps(bad))
        assert make_client().movie(862)["id"] == 862
    assert len(server.log) == 5


def test_truncated_answer_is_retried(server, make_client):
    server.add("/movie/862", raw=b'{"id": 862', headers={"Content-Length": "100"})
    with pytest.raises(TmdbError, match=r"after 2 attempts.*malformed HTTP answer \(IncompleteRead\)"):
        make_client(max_retries=1).movie(862)


def test_movie_fields_tolerates_odd_shapes():
    odd = {"id": "abc", "overview": 5, "credits": [{"name": "x"}],
           "keywords": {"keywords": "toy", "results": [None, {"name": 3}, {"name": " toy "}]}}
    assert movie_fields(odd) == {"tmdb_id": 0, "overview": "", "director": "", "cast": [], "keywords": ["toy"]}
    credits = {"crew": ["John", {"job": "Director", "name": None}, {"job": "Director", "name": "Jo"}],
               "cast": [{"name": "B", "order": None}, {"name": "A", "order": 0}, "C", {"name": ["D"]}]}
    got = movie_fields({"id": 7, "credits": credits, "keywords": None})
    assert got["director"] == "Jo" and got["cast"] == ["A", "B"] and got["keywords"] == []
    assert movie_fields(None) == {"tmdb_id": 0, "overview": "", "director": "", "cast": [], "keywords": []}


def _module_imports(path, top_level_only):
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_import_circle_between_text_and_tmdb():
    import cobra.text
    import cobra.titles
    import cobra.tmdb

    assert "cobra.text" not in _module_imports(cobra.tmdb.__file__, top_level_only=False)
    assert "cobra.tmdb" not in _module_imports(cobra.text.__file__, top_level_only=True)  # only inside embed_items
    assert cobra.text.display_title is cobra.titles.display_title  # chapters keep importing it from cobra.text


@pytest.mark.parametrize("base_url", ["ftp://example.org/3", "127.0.0.1/3", "http://127.0.0.1:abc/3",
                                      "http://[::1/3", "http://127.0.0.1:1/3 x", "http://127.0.0.1:1/3\x00"])
def test_bad_base_url_is_a_clear_error(server, make_client, base_url):
    with pytest.raises(TmdbError, match=f"not a valid http\\(s\\) URL.*{TMDB_BASE_URL_ENV}"):
        make_client(base_url=base_url).movie(862)
    assert server.log == []
