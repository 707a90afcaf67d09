"""Synthetic stand-ins for data that cannot be downloaded: MovieLens-20M's shape without its content.

Explained in chapter 01 (book/01_data.py) and the README's full-scale section.

* :func:`synthetic_movielens` -- random interactions shaped like MovieLens-20M (heavy-tailed activity and
  popularity, timestamps), generated vectorised in seconds; the data benchmark (:mod:`cobra.bench.data`)
  and the tests use it directly.
* :data:`SYNTHETIC` -- the named stand-ins (``ml-20m-synthetic`` at full size, ``ml-20m-synthetic-tiny`` with
  a few hundred users for CPU smoke tests). :func:`write_synthetic` writes one as the files a user would
  bring (an interactions table, an item table and item vectors of the 4090d encoder's width), and
  :func:`cobra.datasets.load_dataset` reads them back through the same loader as any user's data
  (:mod:`cobra.tables`), so the stand-in exercises that path too.

Nothing here is MovieLens: the items are called "Synthetic film ...", interactions ignore the items'
vectors, and every dataset built from them has ``synthetic`` in its name and source. Use them for time and
memory, never for recommendation quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cobra.config import ConfigError, atomic_write

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_WORDS = ("night", "river", "star", "city", "winter", "ghost", "garden", "king", "road", "storm", "mirror", "summer",
          "island", "shadow", "letter", "fire", "machine", "song", "border", "silence", "harbor", "hunter", "glass",
          "empire", "dream", "stone", "orchard", "signal", "desert", "promise", "tide", "lantern")


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of one synthetic stand-in.

    Attributes:
        name: dataset name (ends in ``-synthetic`` or holds ``-synthetic-``).
        num_users, num_items, num_interactions: ``U``, ``N`` (before items nobody rated are dropped), ``R``.
        dim: width of the item vectors (1024, as Qwen3-Embedding-0.6B, the 4090d profile's encoder).
        min_seq_len: fewest events per user (MovieLens-20M: 20).
        seed: the generator's seed; the same spec always gives the same files.
    """

    name: str
    num_users: int
    num_items: int
    num_interactions: int
    dim: int = 1024
    min_seq_len: int = 20
    seed: int = 0


SYNTHETIC: dict[str, SyntheticSpec] = {
    spec.name: spec
    for spec in (
        # MovieLens-20M: 138,493 users, 26,744 rated films, 20,000,263 ratings.
        SyntheticSpec("ml-20m-synthetic", 138_493, 26_744, 20_000_263),
        # 200 users for CPU smoke tests: the same tails, but 40 events per user on average (ML-20M: 144), so
        # that every chapter's code runs at the 4090d sizes (T = 200, D = 256) in minutes on 2 cores.
        SyntheticSpec("ml-20m-synthetic-tiny", 200, 2_000, 8_000),
    )
}


# MovieLens star ratings 0.5..5 and rough ML-20M frequencies.
_RATINGS = np.arange(1, 11, dtype=np.float32) / 2
_RATING_P = np.array([1.2, 3.4, 3.5, 7.2, 4.4, 14.1, 10.9, 26.0, 7.6, 14.5])




def synthetic_movielens(
    num_users: int = 138_000, num_items: int = 27_000, num_interactions: int = 20_000_000, seed: int = 0,
    min_seq_len: int = 20,
) -> pd.DataFrame:
    """Random interactions shaped like MovieLens-20M, generated vectorised in a few seconds.

    * user lengths: ``min_seq_len`` plus a log-normal heavy tail (sigma 1.2), summing exactly to
      ``num_interactions`` (ML-20M: min 20, median ~68, max ~9k);
    * item popularity: Zipf-Mandelbrot, p(rank) ∝ (rank + 200 N / 27000)^-1.5, ranks randomly
      permuted over ids;
    * timestamps: each user starts somewhere in 1996..2015 and advances by log-normal gaps (median ~90 s,
      heavy tail of days/months); about 7% of gaps are 0 (ties, as when ratings are saved in one batch);
    * ratings: 0.5..5 with MovieLens-like frequencies.
    A user may rate an item twice (unlike MovieLens); nothing downstream depends on uniqueness.

    Returns:
        DataFrame with columns user int64 (1..U), item int64 (1..N), rating float32, timestamp int64, in
        the order of MovieLens ``ratings.csv``: sorted by (user, item), not by time.
    """
    if num_interactions < min_seq_len * num_users:
        raise ConfigError(
            f"num_interactions={num_interactions} < min_seq_len*num_users={min_seq_len * num_users}; "
            "lower num_users or raise num_interactions"
        )
    rng = np.random.default_rng(seed)
    n = num_interactions
    # Lengths: min + heavy tail, scaled to the exact total.
    tail = rng.lognormal(mean=0.0, sigma=1.2, size=num_users)
    extra = n - min_seq_len * num_users
    lengths = min_seq_len + np.floor(tail / tail.sum() * extra).astype(np.int64)  # (U,)
    lengths[rng.choice(num_users, size=n - int(lengths.sum()), replace=False)] += 1
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Items, in chronological order: Zipf-Mandelbrot popularity over a random permutation of ids, drawn
    # from a lookup table where the item of rank k fills about p(k) * 2^20 slots (at least one).
    p = (np.arange(num_items) + 200.0 * num_items / 27_000) ** -1.5  # same shape at any catalogue size
    slots = np.maximum(np.round(p / p.sum() * 2**20), 1).astype(np.int64)
    table = np.repeat(rng.permutation(num_items).astype(np.int32) + 1, slots)
    items = table[rng.integers(0, len(table), size=n, dtype=np.int32)]  # (n,) int32
    # Timestamps: each user starts in 1996..2015 and advances by log-normal gaps, some of them 0.
    # One cumsum over all users: the first gap of each user jumps from the previous user's last time.
    gaps = np.exp(rng.standard_normal(n, dtype=np.float32) * np.float32(2.5) + np.float32(4.5))
    gaps = np.minimum(gaps, np.float32(90 * 86_400)).astype(np.int64)  # (n,)
    gaps[rng.random(n, dtype=np.float32) < 0.03] = 0
    first = offsets[:-1]
    gaps[first] = 0
    start = rng.integers(820_000_000, 1_420_000_000, size=num_users)  # (U,)
    last = start + np.add.reduceat(gaps, first)  # (U,) time of each user's last event
    gaps[first] = start - np.concatenate([[0], last[:-1]])
    stamps = np.cumsum(gaps)  # (n,) chronological within each user
    # ratings.csv order: by (user, item), not by time. One sort of packed (user, item, position) keys;
    # the position within the user's chronological sequence then fetches the timestamp.
    position = np.arange(n, dtype=np.int64) - np.repeat(first, lengths)  # (n,)
    users = np.repeat(np.arange(1, num_users + 1, dtype=np.int64), lengths)  # (n,)
    bp, bi = int(lengths.max()).bit_length(), int(num_items).bit_length()
    if int(num_users).bit_length() + bi + bp > 63:
        raise ConfigError(f"num_users={num_users}, num_items={num_items} too large for synthetic data")
    key = np.sort((users << (bi + bp)) | (items.astype(np.int64) << bp) | position, kind="stable")
    users, items, position = key >> (bi + bp), (key >> bp) & ((1 << bi) - 1), key & ((1 << bp) - 1)
    ratings = np.repeat(_RATINGS, np.round(_RATING_P * 10).astype(np.int64))  # lookup table, 1000 slots
    ratings = ratings[rng.integers(0, len(ratings), size=n, dtype=np.int32)]
    return pd.DataFrame(
        {"user": users, "item": items, "rating": ratings, "timestamp": stamps[offsets[users - 1] + position]},
        copy=False,
    )


def synthetic_items(num_items: int, seed: int = 0) -> pd.DataFrame:
    """An item table for ``num_items`` synthetic films: ``item`` 1..N, ``title``, ``year``, ``genres``.

    Titles are "Synthetic film <id>: <two words>", so no output can pass for a MovieLens title; years are
    1920..2015 and each film has one to three of :data:`GENRES`.
    """
    rng = np.random.default_rng(seed + 1)
    words = np.asarray(_WORDS)[rng.integers(0, len(_WORDS), size=(num_items, 2))]  # (N, 2)
    genres = np.asarray(GENRES)
    counts = rng.integers(1, 4, size=num_items)
    picks = rng.random((num_items, len(GENRES))).argsort(axis=1)  # (N, G) a random order of genres per film
    return pd.DataFrame({
        "item": np.arange(1, num_items + 1, dtype=np.int64),
        "title": [f"Synthetic film {i}: {a.title()} {b}" for i, (a, b) in enumerate(words, start=1)],
        "year": rng.integers(1920, 2016, size=num_items),
        "genres": ["|".join(sorted(genres[p[:c]])) for p, c in zip(picks, counts, strict=True)],
    })


def synthetic_vectors(items: pd.DataFrame, dim: int = 1024, seed: int = 0) -> np.ndarray:
    """(N, dim) float32 unit item vectors with structure: one direction per genre, 64 topics and noise.

    Films that share genres or a topic are closer, as text embeddings of similar films are, so semantic IDs
    fitted on them have clusters to find. Row ``i`` belongs to ``items`` row ``i``.
    """
    rng = np.random.default_rng(seed + 2)
    n = len(items)
    genre_dirs = rng.standard_normal((len(GENRES), dim), dtype=np.float32)  # (G, dim)
    topic_dirs = rng.standard_normal((64, dim), dtype=np.float32)  # (64, dim)
    member = np.zeros((n, len(GENRES)), dtype=np.float32)  # (N, G) genre indicator
    index = {g: j for j, g in enumerate(GENRES)}
    for i, gs in enumerate(items["genres"].tolist()):
        for g in gs.split("|"):
            member[i, index[g]] = 1.0
    vectors = member @ genre_dirs + 1.5 * topic_dirs[rng.integers(0, 64, size=n)]  # (N, dim)
    vectors += rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def write_synthetic(spec: SyntheticSpec, folder: Path) -> dict[str, Path]:
    """Write ``spec`` as a user's files into ``folder``: ``interactions.parquet`` (user, item, rating,
    timestamp), ``items.csv`` (item, title, year, genres) and ``item_vectors.npy`` ((N, dim) float32, one row
    per row of ``items.csv``). Each file is written atomically.

    Returns:
        ``{"interactions": path, "items": path, "vectors": path}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    inter = synthetic_movielens(spec.num_users, spec.num_items, spec.num_interactions, seed=spec.seed,
                                min_seq_len=spec.min_seq_len)
    items = synthetic_items(spec.num_items, seed=spec.seed)
    vectors = synthetic_vectors(items, spec.dim, seed=spec.seed)
    paths = {"interactions": folder / "interactions.parquet", "items": folder / "items.csv",
             "vectors": folder / "item_vectors.npy"}
    atomic_write(paths["interactions"], lambda tmp: inter.to_parquet(tmp, index=False))
    atomic_write(paths["items"], items.to_csv(index=False))

    def save_vectors(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the temporary path
            np.save(fh, vectors)

    atomic_write(paths["vectors"], save_vectors)
    return paths

