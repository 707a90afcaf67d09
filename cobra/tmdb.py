"""TMDB enrichment: overview, director, cast and keywords for MovieLens items.

Explained in chapter 02 (book/02_item_embeddings.py).

Optional. The source articles add The Movie Database's overview, director, top
cast and keywords to each item's text. :class:`TmdbClient` is a small client of
TMDB API v3 built on ``urllib`` (no extra dependency):

- the token comes from ``$TMDB_API_TOKEN`` (the v4 "API Read Access Token",
  sent as ``Authorization: Bearer``); surrounding whitespace is stripped and a
  token with a space, control or non-ASCII character inside is refused. It is
  never logged, never put in a URL, an error message or a ``repr``, and never
  sent on a redirect to another origin (scheme, host or port);
- requests are spaced by ``min_interval`` seconds; 429 (honouring
  ``Retry-After``), 5xx, timeouts and broken connections are retried with
  exponential back-off; every wait, ``Retry-After`` included, is capped at
  ``max_backoff``; 401 stops with advice, 404 skips the item and records it;
- each attempt has ``timeout`` seconds in all (connect, headers and body
  together), so a server that drips bytes cannot hold a request longer;
- an answer that is not a JSON object (or a search result without an id) is a
  :class:`TmdbError` naming the problem, not retried and not cached;
- every answer (200 and 404) is cached as JSON under ``data_home()/tmdb/``,
  so a rerun makes no request and needs no token.

:func:`enrich_items` maps MovieLens items to TMDB (``tmdb_id`` from
``links.csv`` when the dataset has it, else a title + year search) and returns
``{item: {"tmdb_id", "overview", "director", "cast", "keywords"}}`` for
:func:`cobra.text.item_texts`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import http.client
import io
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cobra.config import CobraError, atomic_write, data_home
from cobra.titles import display_title

log = logging.getLogger(__name__)

TOKEN_ENV = "TMDB_API_TOKEN"
BASE_URL_ENV = "TMDB_BASE_URL"
DEFAULT_BASE_URL = "https://api.themoviedb.org/3"
TOKEN_HELP = (
    f"Set ${TOKEN_ENV} to your TMDB 'API Read Access Token' (the long v4 token, not the short v3 API key) "
    "from https://www.themoviedb.org/settings/api"
)
BASE_URL_HELP = f"check ${BASE_URL_ENV} (or TmdbConfig.base_url); leave it unset for {DEFAULT_BASE_URL}"


class TmdbError(CobraError, RuntimeError):
    """A TMDB request that failed for good (after retries), or a malformed answer. Never carries the token."""


class TmdbAuthError(TmdbError):
    """No token, a malformed token, or TMDB rejected it (HTTP 401)."""


class TmdbNotFound(TmdbError):
    """TMDB answered 404 for a resource (the item is skipped)."""


@dataclass(frozen=True)
class TmdbConfig:
    """Client settings.

    Attributes:
        base_url: API root; default ``$TMDB_BASE_URL`` or ``https://api.themoviedb.org/3``.
        min_interval: seconds between two requests (TMDB allows about 40-50 per second).
        max_retries: retries after the first attempt for 429 / 5xx / timeouts / broken connections.
        backoff: first back-off in seconds; doubles per retry.
        max_backoff: cap in seconds on every wait between attempts, ``Retry-After`` included.
        timeout: seconds one attempt may take in all (connect, headers and body together).
        cache_dir: JSON cache; default ``data_home()/tmdb``.
        language: TMDB ``language`` parameter.
    """

    base_url: str | None = None
    min_interval: float = 0.05
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 10.0
    cache_dir: str | Path | None = None
    language: str = "en-US"


# --------------------------------------------------------------------------- token and URLs


def _token_problem(token: str) -> str | None:
    """Why ``token`` (already stripped) cannot go into a header, without quoting it; None when fine."""
    for pos, char in enumerate(token, start=1):
        if not 33 <= ord(char) <= 126:
            kind = "a space" if char == " " else "a control character" if ord(char) < 32 or ord(char) == 127 \
                else "a non-ASCII character"
            return (f"the TMDB token holds {kind} at position {pos} of {len(token)}; "
                    f"copy it again as one line. {TOKEN_HELP}")
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: matches no other origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _describe(value: Any) -> str:
    """``null``, ``a list``, ... for an error message (never the value itself: it comes from the network)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {list: "a list", str: "a string", int: "a number", float: "a number", dict: "an object"}.get(
        type(value), type(value).__name__)


# --------------------------------------------------------------------------- urllib plumbing


class _DeadlineReader(io.RawIOBase):
    """Raw reader over a :class:`_DeadlineSocket`: every ``recv`` gets only the time left."""

    def __init__(self, owner: _DeadlineSocket):
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner._release()


class _DeadlineSocket:
    """A connected socket whose every send / receive must finish before ``deadline`` (``time.monotonic``).

    A socket timeout alone restarts with each byte, so a server that drips one byte a second never
    times out; here each operation gets ``deadline - now`` and raises :class:`TimeoutError` once
    the deadline has passed. Like ``socket.makefile``, closing the socket waits for its reader.
    """

    def __init__(self, sock: Any, deadline: float):
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TMDB request deadline passed")
        self._sock.settimeout(left)

    def sendall(self, data: Any, *args: Any) -> None:
        self._arm()
        self._sock.sendall(data, *args)

    def recv_into(self, buffer: Any, *args: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer, *args)

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode.replace("b", "") != "r" or "b" not in mode:
            raise ValueError(f"_DeadlineSocket only reads bytes, not mode {mode!r}")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def _release(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closing = True
        if self._readers <= 0:
            self._sock.close()


def _with_deadline(http_class: Any, deadline: float) -> Any:
    class DeadlineConnection(http_class):  # type: ignore[misc,valid-type]
        def connect(self) -> None:
            self.timeout = max(deadline - time.monotonic(), 1e-3)
            super().connect()
            if time.monotonic() >= deadline:
                raise TimeoutError("TMDB request deadline passed while connecting")
            self.sock = _DeadlineSocket(self.sock, deadline)

    return DeadlineConnection


class _DeadlineMixin:
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        deadline = getattr(req, "deadline", None)
        if deadline is not None:
            http_class = _with_deadline(http_class, deadline)
        return super().do_open(http_class, req, **kwargs)  # type: ignore[misc]


class _DeadlineHTTPHandler(_DeadlineMixin, urllib.request.HTTPHandler):
    pass


class _DeadlineHTTPSHandler(_DeadlineMixin, urllib.request.HTTPSHandler):
    pass


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects only; drops ``Authorization`` when the origin changes; keeps the deadline."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _DEFAULT_PORTS:
            return None  # not followed: the caller sees the 3xx
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        if _origin(newurl) != _origin(req.full_url):
            for hdrs in (new.headers, new.unredirected_hdrs):
                for key in [k for k in hdrs if k.lower() == "authorization"]:
                    del hdrs[key]
            log.debug("TMDB redirect to another origin (%s://%s): Authorization not sent", *_origin(newurl)[:2])
        new.deadline = getattr(req, "deadline", None)
        return new


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_DeadlineHTTPHandler, _DeadlineHTTPSHandler, _RedirectHandler)


# --------------------------------------------------------------------------- client


_Check = Callable[[str, dict[str, Any]], None]


def _search_results(path: str, body: dict[str, Any]) -> None:
    """A ``/search/movie`` answer must hold a list of objects whose first one has an integer ``id``."""
    results = body.get("results")
    if results is None:
        return
    if not isinstance(results, list):
        raise TmdbError(f"TMDB GET {path}: 'results' is {_describe(results)}, not a list; {BASE_URL_HELP}")
    if results:
        first = results[0]
        if not isinstance(first, dict):
            raise TmdbError(f"TMDB GET {path}: the first search result is {_describe(first)}, not an object; "
                            f"{BASE_URL_HELP}")
        if "id" not in first:
            raise TmdbError(f"TMDB GET {path}: the first search result has no 'id'; {BASE_URL_HELP}")
        if _as_id(first["id"]) is None:
            raise TmdbError(f"TMDB GET {path}: the first search result's 'id' is {_describe(first['id'])}, "
                            f"not a positive integer; {BASE_URL_HELP}")


def _as_id(value: Any) -> int | None:
    """A positive integer id from ``value`` (int or digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value) or None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


class TmdbClient:
    """TMDB API v3 client with rate limiting, retries, a per-attempt deadline and a JSON disk cache.

    Args:
        token: bearer token; default ``$TMDB_API_TOKEN``; surrounding whitespace is stripped. Only
            needed (and checked) for requests not in the cache.
        config: :class:`TmdbConfig`.
        sleep, clock: injectable for tests (the per-attempt deadline always uses ``time.monotonic``).

    Attributes:
        requests: number of HTTP requests made (cache hits excluded).
        skipped: ``{item: reason}`` filled by :func:`enrich_items`.
    """

    def __init__(self, token: str | None = None, *, config: TmdbConfig | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.config = config or TmdbConfig()
        raw = token if token is not None else os.environ.get(TOKEN_ENV)
        self._token = raw.strip() if isinstance(raw, str) else None
        base = self.config.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        self.base_url = base.strip().rstrip("/")
        self.cache_dir = Path(self.config.cache_dir) if self.config.cache_dir is not None else data_home() / "tmdb"
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None
        self._opener = _opener()
        self.requests = 0
        self.skipped: dict[int, str] = {}

    def __repr__(self) -> str:  # the token is deliberately absent
        return f"TmdbClient(base_url={self.base_url!r}, cache_dir={str(self.cache_dir)!r}, " \
               f"token={'set' if self._token else 'missing'})"

    # ---------------------------------------------------------------- cache

    def _cache_path(self, path: str, params: Mapping[str, Any]) -> Path:
        name = "_".join(p for p in path.strip("/").split("/") if p) or "root"
        if params:
            query = urllib.parse.urlencode(sorted((k, str(v)) for k, v in params.items()))
            name += "-" + hashlib.sha256(query.encode()).hexdigest()[:16]
        return self.cache_dir / f"{name}.json"

    def _write_cache(self, file: Path, record: dict[str, Any]) -> None:
        atomic_write(file, json.dumps(record, ensure_ascii=False, sort_keys=True))

    def _read_cache(self, file: Path, path: str, check: _Check | None) -> dict[str, Any] | None:
        """A cached record ``{"status": 200|404, "body": {...}}``, or None (absent, unreadable or malformed)."""
        if not file.is_file():
            return None
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, OSError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            record = None
        ok = isinstance(record, dict) and record.get("status") in (200, 404) and isinstance(record.get("body"), dict)
        if ok and record["status"] == 200 and check is not None:
            try:
                check(path, record["body"])
            except TmdbError:
                ok = False
        if not ok:
            log.warning("TMDB cache file %s is unreadable or malformed; fetching again", file)
            return None
        return record

    # ---------------------------------------------------------------- HTTP

    def _wait_turn(self) -> None:
        if self._last_request is not None and self.config.min_interval > 0:
            wait = self._last_request + self.config.min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff * (2.0 ** min(attempt, 60)), self.config.max_backoff)

    @staticmethod
    def _retry_after(headers: Any) -> float | None:
        """Seconds asked by ``Retry-After`` (delta-seconds or HTTP date), or None when absent or unusable."""
        value = headers.get("Retry-After") if headers is not None else None
        if not value or not value.strip():
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            if when is None:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            seconds = when.timestamp() - time.time()
        return max(0.0, seconds) if math.isfinite(seconds) else None

    def _check_ready(self, path: str) -> str:
        """The token to send, or a :class:`TmdbError` saying what to fix before any request."""
        if not self._token:
            raise TmdbAuthError(f"no TMDB token and {path} is not cached. {TOKEN_HELP}")
        problem = _token_problem(self._token)
        if problem:
            raise TmdbAuthError(problem)
        try:
            parts = urllib.parse.urlsplit(self.base_url)
            valid = parts.scheme.lower() in _DEFAULT_PORTS and bool(parts.hostname) \
                and (parts.port is None or parts.port > 0)  # .port raises ValueError unless 0-65535
        except ValueError:  # also a broken [IPv6] host
            valid = False
        if not valid or any(c.isspace() or not c.isprintable() for c in self.base_url):
            raise TmdbError(f"TMDB base URL {self.base_url!r} is not a valid http(s) URL; {BASE_URL_HELP}")
        return self._token

    def _get_once(self, url: str, headers: dict[str, str]) -> tuple[bytes, str]:
        """One GET attempt within ``config.timeout`` seconds in all -> (body, content type)."""
        req = urllib.request.Request(url, headers=headers, method="GET")
        req.deadline = time.monotonic() + self.config.timeout  # type: ignore[attr-defined]
        with self._opener.open(req, timeout=self.config.timeout) as resp:
            return resp.read(), resp.headers.get_content_type()

    def _decode(self, path: str, raw: bytes, content_type: str) -> dict[str, Any]:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
            raise TmdbError(f"TMDB GET {path} answered a body that is not JSON ({content_type}, {len(raw)} bytes); "
                            f"{BASE_URL_HELP}") from None
        if not isinstance(body, dict):
            raise TmdbError(f"TMDB GET {path} answered {_describe(body)} instead of a JSON object; {BASE_URL_HELP}")
        return body

    def _fetch(self, path: str, params: Mapping[str, Any],
               check: _Check | None = None) -> tuple[int, dict[str, Any]]:
        """One logical GET with retries -> (status 200 or 404, JSON object)."""
        token = self._check_ready(path)
        url = f"{self.base_url}/{path.strip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(sorted((k, str(v)) for k, v in params.items()))
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "cobra-book"}
        last = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            self._wait_turn()
            self.requests += 1
            log.debug("GET %s (attempt %d)", path, attempt + 1)
            wait: float | None = None
            try:
                raw, content_type = self._get_once(url, headers)
            except urllib.error.HTTPError as err:
                status = err.code
                err.close()
                if status == 401:
                    raise TmdbAuthError(f"TMDB rejected the token (HTTP 401) for GET {path}. {TOKEN_HELP}") from None
                if status == 404:
                    return 404, {"status_code": 404}
                if status == 429 or status >= 500:
                    last = f"HTTP {status}"
                    wait = self._retry_after(err.headers) if status == 429 else None
                elif 300 <= status < 400:
                    raise TmdbError(f"TMDB answered HTTP {status} for GET {path}, a redirect that was not followed "
                                    f"(loop, or not to http/https); {BASE_URL_HELP}") from None
                else:
                    raise TmdbError(f"TMDB answered HTTP {status} for GET {path}; not retried") from None
            except TimeoutError as err:
                last = f"timeout after {self.config.timeout:g} s ({type(err).__name__})"
            except urllib.error.URLError as err:
                reason = err.reason
                kind = "timeout" if isinstance(reason, TimeoutError) else "connection error"
                last = f"{kind} ({type(reason).__name__})"
            except (ValueError, http.client.InvalidURL) as err:  # a URL http.client refuses; it may quote it
                raise TmdbError(f"cannot send GET {path}: a bad URL in the base URL {self.base_url!r} or in a "
                                f"redirect ({type(err).__name__}); {BASE_URL_HELP}") from None
            except http.client.HTTPException as err:  # IncompleteRead, BadStatusLine, LineTooLong ...
                last = f"malformed HTTP answer ({type(err).__name__})"
            except OSError as err:  # reset / refused mid-read
                last = f"connection error ({type(err).__name__})"
            else:
                body = self._decode(path, raw, content_type)
                if check is not None:
                    check(path, body)
                return 200, body
            if attempt == self.config.max_retries:
                break
            delay = min(wait if wait is not None else self._backoff(attempt), self.config.max_backoff)
            log.warning("TMDB GET %s: %s; retry %d/%d in %.2f s", path, last, attempt + 1,
                        self.config.max_retries, delay)
            self._sleep(delay)
        raise TmdbError(
            f"TMDB GET {path} failed after {self.config.max_retries + 1} attempts (last: {last}). "
            f"Check the network and {self.base_url}; answers received so far are cached, so rerunning resumes."
        )

    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            check: _Check | None = None) -> dict[str, Any]:
        """GET ``path`` (e.g. ``/movie/862``) -> JSON object; from the disk cache when there.

        Args:
            path, params: endpoint and query parameters.
            check: ``check(path, body)`` raises :class:`TmdbError` when a 200 body lacks what the
                caller needs; such an answer is not cached (a cached one failing it is fetched again).

        Raises:
            TmdbNotFound: on 404 (also cached). TmdbAuthError: no / malformed token, 401.
            TmdbError: retries exhausted, or an answer that is not a (valid) JSON object.
        """
        params = dict(params or {})
        file = self._cache_path(path, params)
        record = self._read_cache(file, path, check)
        if record is None:
            status, body = self._fetch(path, params, check)
            record = {"status": status, "path": path, "params": params, "body": body}
            self._write_cache(file, record)
        if record["status"] == 404:
            raise TmdbNotFound(f"TMDB has no {path} (HTTP 404)")
        return record["body"]

    # ---------------------------------------------------------------- endpoints

    def movie(self, tmdb_id: int) -> dict[str, Any]:
        """Details, credits and keywords of one movie in one request (``append_to_response``)."""
        return self.get(f"/movie/{int(tmdb_id)}",
                        {"append_to_response": "credits,keywords", "language": self.config.language})

    def search(self, title: str, year: int | None = None) -> int | None:
        """TMDB id of the best match for ``title`` (and ``year``), or None.

        Raises:
            TmdbError: the answer's ``results`` is not a list, or its first result has no integer ``id``.
        """
        params: dict[str, Any] = {"query": title, "include_adult": "false", "language": self.config.language}
        if year is not None:
            params["year"] = int(year)
        results = self.get("/search/movie", params, check=_search_results).get("results") or []
        return _as_id(results[0]["id"]) if results else None


def _objects(value: Any) -> list[dict[str, Any]]:
    """The dict entries of ``value`` when it is a list, else []."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _order(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1_000_000.0


def movie_fields(details: Mapping[str, Any]) -> dict[str, Any]:
    """``/movie/{id}?append_to_response=credits,keywords`` JSON -> the fields the text builder uses.

    Fields of an unexpected type (a list where an object belongs, a number for a name ...) count as absent.

    Returns:
        ``{"tmdb_id": int, "overview": str, "director": str, "cast": list[str] (top 5 by billing),
        "keywords": list[str]}``.
    """
    details = _object(details)
    credits = _object(details.get("credits"))
    directors = [_text(c.get("name")) for c in _objects(credits.get("crew")) if c.get("job") == "Director"]
    cast = sorted(_objects(credits.get("cast")), key=lambda c: (_order(c.get("order")), _text(c.get("name"))))
    kw = _object(details.get("keywords"))
    keywords = _objects(kw.get("keywords")) or _objects(kw.get("results"))
    overview = details.get("overview")
    return {
        "tmdb_id": _as_id(details.get("id")) or 0,
        "overview": overview.strip() if isinstance(overview, str) else "",
        "director": ", ".join(dict.fromkeys(d for d in directors if d)),
        "cast": [name for name in (_text(c.get("name")) for c in cast) if name][:5],
        "keywords": [name for name in (_text(k.get("name")) for k in keywords) if name],
    }


def _tmdb_id(row: Mapping[str, Any]) -> int | None:
    value = row.get("tmdb_id")
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None


def _search_item(client: TmdbClient, title: str, year: int | None) -> int | None:
    """Title + year search; then the title without a parenthesised alternative title; then without year."""
    name = display_title(title, year)
    short = name.split(" (")[0].strip()
    tries = [(name, year)]
    if short and short != name:
        tries.append((short, year))
    if year is not None:
        tries.append((short or name, None))
    for query, y in tries:
        found = client.search(query, y)
        if found is not None:
            return found
    return None


def enrich_items(items: pd.DataFrame, client: TmdbClient, *, progress: bool = True) -> dict[int, dict[str, Any]]:
    """TMDB fields for every item that can be matched.

    Args:
        items: MovieLens items frame (``item``, ``title``, ``year``, optional ``tmdb_id``).
        client: a :class:`TmdbClient` (its cache makes a rerun free).
        progress: tqdm bar over items.

    Returns:
        ``{item: movie_fields(...)}`` for matched items. Unmatched items (no search hit, 404)
        are left out and recorded in ``client.skipped`` as ``{item: reason}``.

    Raises:
        TmdbAuthError: missing, malformed or rejected token (stops at once: every other request would fail too).
        TmdbError: retries exhausted or a malformed answer (answers so far are cached: a rerun resumes).
    """
    from tqdm.auto import tqdm

    out: dict[int, dict[str, Any]] = {}
    for row in tqdm(items.to_dict("records"), desc="TMDB", unit="item", disable=not progress):
        item = int(row["item"])
        year = None if row.get("year") is None or pd.isna(row.get("year")) else int(row["year"])
        tmdb_id = _tmdb_id(row)
        try:
            if tmdb_id is None:
                tmdb_id = _search_item(client, str(row.get("title", "")), year)
                if tmdb_id is None:
                    client.skipped[item] = "no TMDB search match"
                    continue
            out[item] = movie_fields(client.movie(tmdb_id))
        except TmdbNotFound:
            client.skipped[item] = f"TMDB id {tmdb_id} not found (HTTP 404)"
    if client.skipped:
        log.info("TMDB: %d of %d items enriched, %d skipped", len(out), len(items), len(client.skipped))
    return out


__all__ = [
    "DEFAULT_BASE_URL", "TOKEN_ENV", "TmdbAuthError", "TmdbClient", "TmdbConfig", "TmdbError", "TmdbNotFound",
    "enrich_items", "movie_fields",
]
