"""What a run reads besides its data split: the items' text vectors and their semantic IDs, both cached.

Explained in chapters 02 (text vectors, book/02_item_embeddings.py), 03 (semantic IDs,
book/03_semantic_ids.py) and 05 (the codes a run trains with, book/06_prefixn.py).

* :func:`item_text_vectors` -- (N, Dt) float32 text vectors of a dataset's items (row ``i - 1`` = item ``i``),
  from the embedding cache of :func:`cobra.text.embed_items`;
* :func:`semantic_ids` -- (N, L + 1) int64 codes fitted on those vectors by :mod:`cobra.sid`, cached under
  ``data_home()/sid/<dataset>__<encoder>__<method>__L<L>K<K>__<digest>__f64.npz``;
* :func:`text_fingerprint` / :func:`check_text_vectors` -- the ``"N x D sha256:<16 hex>"`` of text vectors
  that a run stores in ``config.json`` (``RunConfig.text_vectors``), and the check that refuses vectors
  that changed since the run was trained;
* :func:`sid_config_of` -- the :class:`cobra.sid.SIDConfig` of a :class:`cobra.presets.RunConfig`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cobra.config import ConfigError, data_home
from cobra.sid import SIDConfig, SIDError, fit_semantic_ids, load_semantic_ids

if TYPE_CHECKING:
    from cobra.presets import RunConfig

# SIDConfig fields that name a cache file; the others (normalize, iters, tolerance, seed) do so only when they
# differ from their defaults, so the runs' codes (which keep the defaults) keep their file names.
_NAMED_SID_FIELDS = ("levels", "codes", "method")


def text_fingerprint(vectors: np.ndarray) -> str:
    """``"N x D sha256:<16 hex>"`` of (N, D) float32 item text vectors: detects a changed embedding cache."""
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    digest = hashlib.sha256(arr.tobytes()).hexdigest()[:16]
    return f"{arr.shape[0]}x{arr.shape[1]} sha256:{digest}"


def item_text_vectors(dataset: str, encoder: str, progress: bool = False) -> np.ndarray:
    """(N, Dt) float32 text vectors of ``dataset``'s items with ``encoder`` (cached), row ``i - 1`` = item ``i``.

    ``Dt`` is the encoder's output dim (384 for ``minilm``); see :func:`cobra.text.embed_items`.
    """
    from cobra.text import embed_items

    return embed_items(dataset, encoder, progress=progress).vectors


def check_text_vectors(config: RunConfig, vectors: np.ndarray, where: str | Path) -> None:
    """Refuse (N, Dt) text vectors whose fingerprint differs from the one ``config`` was trained with.

    Raises:
        ConfigError: naming ``where`` (the run) and both fingerprints.
    """
    now = text_fingerprint(vectors)
    if config.text_vectors is not None and now != config.text_vectors:
        raise ConfigError(
            f"{where} was trained with {config.dataset} / {config.encoder} text vectors {config.text_vectors}, but "
            f"the embedding cache now gives {now}: the item texts or the encoder changed since. Restore the old "
            "cache file under data/cache/embeddings, or retrain the run (a new --out)."
        )


def sid_config_of(config: RunConfig) -> SIDConfig:
    """The semantic-ID settings of a run: ``config.sid_levels`` x ``config.sid_codes`` with ``config.sid_method``."""
    return SIDConfig(levels=config.sid_levels, codes=config.sid_codes, method=config.sid_method)


def sid_cache_path(dataset: str, encoder: str, sid_config: SIDConfig, vectors: np.ndarray) -> Path:
    """Where :func:`semantic_ids` caches the codes of ``sid_config`` fitted on (N, Dt) ``vectors``.

    The name holds the vectors' fingerprint and the quantiser's revision ("f64": float64 decisions), so
    codes fitted on other vectors, or by an older quantiser, are never reused.
    """
    digest = text_fingerprint(vectors).rsplit(":", 1)[1]
    c = sid_config
    extra = "".join(f"__{f.name}{getattr(c, f.name)}" for f in dataclasses.fields(SIDConfig)
                    if f.name not in _NAMED_SID_FIELDS and getattr(c, f.name) != f.default)
    return data_home() / "sid" / f"{dataset}__{encoder}__{c.method}__L{c.levels}K{c.codes}__{digest}{extra}__f64.npz"


def semantic_ids(dataset: str, encoder: str, sid_config: SIDConfig, progress: bool = False) -> np.ndarray:
    """Item codes (N, L + 1) int64 of ``dataset``'s items, cached under ``data_home()/sid``.

    Embeds the item texts with ``encoder`` (:func:`cobra.text.embed_items`, itself cached) and fits a
    residual quantiser of ``sid_config`` (:func:`cobra.sid.fit_semantic_ids`); row ``i - 1`` = item ``i``,
    the last column is the uniqueness code. A run's codes: ``semantic_ids(c.dataset, c.encoder,
    sid_config_of(c))`` for a :class:`cobra.presets.RunConfig` ``c``.
    """
    from cobra.text import embed_items

    vectors = embed_items(dataset, encoder, progress=progress).vectors
    path = sid_cache_path(dataset, encoder, sid_config, vectors)
    if path.is_file():
        # The file's content hash, its codes' ranges and its row count are checked; a damaged file is refitted.
        try:
            sids, hashed = load_semantic_ids(path, num_items=len(vectors))
            if (sids.config.levels, sids.config.codes) != (sid_config.levels, sid_config.codes):
                raise SIDError(f"{path} holds {sids.config.levels} x {sids.config.codes} codes, expected "
                               f"{sid_config.levels} x {sid_config.codes}")
        except SIDError as err:  # the message names the file and says what is wrong with it
            logging.getLogger(__name__).warning("%s; refitting the semantic IDs",
                                                str(err).removesuffix("; delete it and fit again"))
        else:
            if not hashed:  # written before content hashes: record one for the codes checked above
                with contextlib.suppress(OSError):
                    sids.save(path)
            return sids.codes
    sids = fit_semantic_ids(vectors, sid_config)
    sids.save(path)  # atomic, with a content hash
    return sids.codes
