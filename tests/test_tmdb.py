"""TMDB client against a local HTTP server: success, cache, 401, 404, 429, timeouts, token hygiene."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from cobra.text import item_texts
from cobra.tmdb import (
    TOKEN_ENV,
    TmdbAuthError,
    TmdbClient,
    TmdbConfig,
    TmdbError,
    TmdbNotFound,
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
    """Scripted TMDB: ``routes[path]`` is a list of (status, body, headers, delay); the last one repeats."""

    def __init__(self):
        self.routes: dict[str, list[tuple[int, dict, dict, float]]] = {}
        self.log: list[tuple[str, dict, str | None]] = []
        self.lock = threading.Lock()

    def add(self, path, status=200, body=None, headers=None, delay=0.0):
        self.routes.setdefault(path, []).append((status, body or {}, headers or {}, delay))

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        path = url.path.removeprefix("/3")
        with self.lock:
            self.log.append((path, dict(urllib.parse.parse_qsl(url.query)), handler.headers.get("Authorization")))
            script = self.routes.get(path)
            if not script:
                status, body, headers, delay = 404, {"status_code": 34}, {}, 0.0
            else:
                status, body, headers, delay = script.pop(0) if len(script) > 1 else script[0]
        if delay:
            time.sleep(delay)
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and hung up


@pytest.fixture
def server():
    fake = FakeTmdb()

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
    yield fake
    httpd.shutdown()
    httpd.server_close()


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
