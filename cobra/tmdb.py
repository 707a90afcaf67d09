"""TMDB enrichment: overview, director, cast and keywords for MovieLens items.

Explained in chapter 02 (book/02_item_embeddings.py).

Optional. The source articles add The Movie Database's overview, director, top
cast and keywords to each item's text. :class:`TmdbClient` is a small client of
TMDB API v3 built on ``urllib`` (no extra dependency):

- the token comes from ``$TMDB_API_TOKEN`` (the v4 "API Read Access Token",
  sent as ``Authorization: Bearer``); it is never logged, never put in a URL,
  an error message or a ``repr``;
- requests are spaced by ``min_interval`` seconds; 429 (honouring
  ``Retry-After``), 5xx and timeouts are retried with exponential back-off;
  401 stops with advice, 404 skips the item and records it;
- every answer (200 and 404) is cached as JSON under ``data_home()/tmdb/``,
  so a rerun makes no request and needs no token.

:func:`enrich_items` maps MovieLens items to TMDB (``tmdb_id`` from
``links.csv`` when the dataset has it, else a title + year search) and returns
``{item: {"tmdb_id", "overview", "director", "cast", "keywords"}}`` for
:func:`cobra.text.item_texts`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cobra.config import CobraError, data_home
from cobra.text import display_title

log = logging.getLogger(__name__)

TOKEN_ENV = "TMDB_API_TOKEN"
BASE_URL_ENV = "TMDB_BASE_URL"
DEFAULT_BASE_URL = "https://api.themoviedb.org/3"
TOKEN_HELP = (
    f"Set ${TOKEN_ENV} to your TMDB 'API Read Access Token' (the long v4 token, not the short v3 API key) "
    "from https://www.themoviedb.org/settings/api"
)


class TmdbError(CobraError, RuntimeError):
    """A TMDB request that failed for good (after retries). Never carries the token."""


class TmdbAuthError(TmdbError):
    """No token, or TMDB rejected it (HTTP 401)."""


class TmdbNotFound(TmdbError):
    """TMDB answered 404 for a resource (the item is skipped)."""


@dataclass(frozen=True)
class TmdbConfig:
    """Client settings.

    Attributes:
        base_url: API root; default ``$TMDB_BASE_URL`` or ``https://api.themoviedb.org/3``.
        min_interval: seconds between two requests (TMDB allows about 40-50 per second).
        max_retries: retries after the first attempt for 429 / 5xx / timeouts.
        backoff: first back-off in seconds; doubles per retry, capped at ``max_backoff``.
        timeout: seconds before a request counts as timed out.
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


class TmdbClient:
    """TMDB API v3 client with rate limiting, retries and a JSON disk cache.

    Args:
        token: bearer token; default ``$TMDB_API_TOKEN``. Only needed for requests not in the cache.
        config: :class:`TmdbConfig`.
        sleep, clock: injectable for tests.

    Attributes:
        requests: number of HTTP requests made (cache hits excluded).
        skipped: ``{item: reason}`` filled by :func:`enrich_items`.
    """

    def __init__(self, token: str | None = None, *, config: TmdbConfig | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.config = config or TmdbConfig()
        self._token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.base_url = (self.config.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.cache_dir = Path(self.config.cache_dir) if self.config.cache_dir is not None else data_home() / "tmdb"
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None
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
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=file.stem + ".", suffix=".tmp", dir=file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, ensure_ascii=False, sort_keys=True)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---------------------------------------------------------------- HTTP

    def _wait_turn(self) -> None:
        if self._last_request is not None and self.config.min_interval > 0:
            wait = self._last_request + self.config.min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff * (2 ** attempt), self.config.max_backoff)

    @staticmethod
    def _retry_after(headers: Any) -> float | None:
        value = headers.get("Retry-After") if headers is not None else None
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            if when is None:
                return None
            return max(0.0, when.timestamp() - time.time())

    def _fetch(self, path: str, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """One logical GET with retries -> (status 200 or 404, JSON body)."""
        if not self._token:
            raise TmdbAuthError(f"no TMDB token and {path} is not cached. {TOKEN_HELP}")
        url = f"{self.base_url}/{path.strip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(sorted((k, str(v)) for k, v in params.items()))
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json",
                   "User-Agent": "cobra-book"}
        last = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            self._wait_turn()
            self.requests += 1
            log.debug("GET %s (attempt %d)", path, attempt + 1)
            wait: float | None = None
            try:
                req = urllib.request.Request(url, headers=headers, method="GET")
                with urllib.request.urlopen(req, timeout=self.config.timeout) as resp:
                    body = resp.read()
                return 200, json.loads(body.decode("utf-8"))
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
                else:
                    raise TmdbError(f"TMDB answered HTTP {status} for GET {path}; not retried") from None
            except TimeoutError as err:
                last = f"timeout after {self.config.timeout:g} s ({type(err).__name__})"
            except urllib.error.URLError as err:
                reason = err.reason
                kind = "timeout" if isinstance(reason, (TimeoutError, socket.timeout)) else "connection error"
                last = f"{kind} ({type(reason).__name__})"
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                last = f"unreadable JSON ({type(err).__name__})"
            except (ConnectionError, OSError) as err:  # reset / refused mid-read
                last = f"connection error ({type(err).__name__})"
            if attempt == self.config.max_retries:
                break
            delay = wait if wait is not None else self._backoff(attempt)
            log.warning("TMDB GET %s: %s; retry %d/%d in %.2f s", path, last, attempt + 1,
                        self.config.max_retries, delay)
            self._sleep(delay)
        raise TmdbError(
            f"TMDB GET {path} failed after {self.config.max_retries + 1} attempts (last: {last}). "
            f"Check the network and {self.base_url}; answers received so far are cached, so rerunning resumes."
        )

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (e.g. ``/movie/862``) -> JSON dict; from the disk cache when there.

        Raises:
            TmdbNotFound: on 404 (also cached). TmdbAuthError: no token / 401. TmdbError: retries exhausted.
        """
        params = dict(params or {})
        file = self._cache_path(path, params)
        record: dict[str, Any] | None = None
        if file.is_file():
            try:
                record = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                log.warning("TMDB cache file %s is unreadable; fetching again", file)
        if record is None or "status" not in record:
            status, body = self._fetch(path, params)
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
        """TMDB id of the best match for ``title`` (and ``year``), or None."""
        params: dict[str, Any] = {"query": title, "include_adult": "false", "language": self.config.language}
        if year is not None:
            params["year"] = int(year)
        results = self.get("/search/movie", params).get("results") or []
        return int(results[0]["id"]) if results else None


def movie_fields(details: Mapping[str, Any]) -> dict[str, Any]:
    """``/movie/{id}?append_to_response=credits,keywords`` JSON -> the fields the text builder uses.

    Returns:
        ``{"tmdb_id": int, "overview": str, "director": str, "cast": list[str] (top 5 by billing),
        "keywords": list[str]}``.
    """
    credits = details.get("credits") or {}
    directors = [c.get("name", "") for c in credits.get("crew") or [] if c.get("job") == "Director"]
    cast = sorted(credits.get("cast") or [], key=lambda c: (c.get("order", 1_000_000), c.get("name", "")))
    kw = details.get("keywords") or {}
    return {
        "tmdb_id": int(details.get("id", 0) or 0),
        "overview": (details.get("overview") or "").strip(),
        "director": ", ".join(dict.fromkeys(d for d in directors if d)),
        "cast": [c.get("name", "") for c in cast if c.get("name")][:5],
        "keywords": [k.get("name", "") for k in kw.get("keywords") or kw.get("results") or [] if k.get("name")],
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
        TmdbAuthError: missing or rejected token (stops at once: every other request would fail too).
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
