"""MovieLens as sequences: CSR user histories, the leave-one-out split and padded batches.

Explained in chapter 01 (book/01_data.py).

Everything here is vectorised numpy (no per-row Python loops), so 20M interactions become sequences and
a split in a few seconds on 2 CPU cores (``python -m cobra bench data``, :mod:`cobra.bench.data`).

Pipeline::

    interactions (DataFrame) --build_sequences--> Sequences (CSR, one row per user)
        --leave_one_out--> LeaveOneOut (train part, valid/test targets and histories)
        --train_loader / eval_batches--> Batch (right-padded tensors)

Conventions: items are 1..N with 0 = padding, users are 1..U. Events of a user are ordered by
``(timestamp, item)``, so ties in timestamps are broken deterministically by the item id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from cobra.config import ConfigError
from cobra.movielens import DataError, load_movielens, sort_order

__all__ = [
    "Batch", "DataError", "LeaveOneOut", "Sequences", "TrainWindows", "build_sequences",
    "collate_batch", "dataset_summary", "eval_batches", "leave_one_out", "load_movielens", "load_split",
    "pad_batch", "synthetic_movielens", "train_loader",
]

SPLITS = ("valid", "test")
REQUIRED_COLUMNS = ("user", "item", "timestamp")


# ----------------------------------------------------------------------------------------------------------
# Sequences (CSR)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sequences:
    """Per-user chronological sequences in CSR layout.

    Row ``r`` holds the events ``items[offsets[r]:offsets[r + 1]]`` (and the matching timestamps). When
    ``users`` is None, row ``r`` belongs to user ``r + 1`` (the layout :func:`build_sequences` returns);
    histories of a split (:meth:`LeaveOneOut.history`) keep only evaluated users and set ``users``.

    Attributes:
        items: (total,) int64 item ids 1..N, chronological within each row.
        timestamps: (total,) int64 seconds, non-decreasing within each row.
        offsets: (R + 1,) int64, ``offsets[0] == 0`` and ``offsets[-1] == total``.
        users: (R,) int64 user id of each row, or None for ``arange(1, R + 1)``.
    """

    items: np.ndarray
    timestamps: np.ndarray
    offsets: np.ndarray
    users: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.items.shape != self.timestamps.shape or self.items.ndim != 1:
            raise ValueError(f"items {self.items.shape} and timestamps {self.timestamps.shape} must be equal 1-D")
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError("offsets must be 1-D and start at 0")
        if self.offsets[-1] != len(self.items):
            raise ValueError(f"offsets end at {self.offsets[-1]} but there are {len(self.items)} events")
        if self.users is not None and len(self.users) != len(self.offsets) - 1:
            raise ValueError(f"users has {len(self.users)} rows, offsets describe {len(self.offsets) - 1}")

    @property
    def num_rows(self) -> int:
        """Number of rows ``R``."""
        return len(self.offsets) - 1

    def __len__(self) -> int:
        return self.num_rows

    @property
    def lengths(self) -> np.ndarray:
        """(R,) int64 number of events per row."""
        return np.diff(self.offsets)

    @property
    def user_ids(self) -> np.ndarray:
        """(R,) int64 user id of each row."""
        if self.users is None:
            return np.arange(1, self.num_rows + 1, dtype=np.int64)
        return self.users

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Items (n,) and timestamps (n,) of row ``r`` (for inspection; batches use :func:`pad_batch`)."""
        a, b = self.offsets[r], self.offsets[r + 1]
        return self.items[a:b], self.timestamps[a:b]


def _csr_take(seq: Sequences, rows: np.ndarray, starts: np.ndarray, keep: np.ndarray) -> Sequences:
    """Rows ``rows`` of ``seq``, each cut to ``keep`` events beginning ``starts`` events into the row.

    Vectorised CSR gather: ``idx = repeat(row_begin - new_offsets, keep) + arange(total)``.
    """
    keep = keep.astype(np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(keep, out=offsets[1:])
    begin = seq.offsets[rows] + starts  # (R',)
    idx = np.repeat(begin - offsets[:-1], keep) + np.arange(offsets[-1], dtype=np.int64)  # (total',)
    return Sequences(seq.items[idx], seq.timestamps[idx], offsets, seq.user_ids[rows].copy())


def build_sequences(interactions: pd.DataFrame, num_users: int) -> Sequences:
    """Group interactions into per-user chronological sequences.

    Args:
        interactions: columns ``user`` int (1..num_users), ``item`` int (1..N), ``timestamp`` int seconds;
            any row order. Other columns are ignored.
        num_users: ``U``; users without events get empty rows.

    Returns:
        Sequences with ``U`` rows, row ``r`` = user ``r + 1``, events sorted by ``(timestamp, item)``:
        the deterministic tie-break for equal timestamps is the item id. Sorting uses
        :func:`cobra.movielens.sort_order` and is skipped when the frame is already in
        ``(user, timestamp, item)`` order (as ``load_movielens`` returns).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in interactions.columns]
    if missing:
        raise DataError(
            f"interactions lack column(s) {missing} (have {list(interactions.columns)}); "
            "pass a frame from cobra.movielens.load_movielens or rename the columns to user, item, timestamp"
        )
    users = interactions["user"].to_numpy(dtype=np.int64)
    items = interactions["item"].to_numpy(dtype=np.int64)
    stamps = interactions["timestamp"].to_numpy(dtype=np.int64)
    if len(users):
        if users.min() < 1 or users.max() > num_users:
            raise DataError(
                f"user ids span {users.min()}..{users.max()} but num_users={num_users}; "
                "users must be remapped to 1..num_users (load_movielens does this)"
            )
        if items.min() < 1:
            raise DataError(f"item ids must be >= 1 (0 is padding); found {items.min()}")
    if not _is_sorted(users, stamps, items):
        order = sort_order(users, stamps, items)
        users, items, stamps = users[order], items[order], stamps[order]
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users + 1)[1:], out=offsets[1:])
    return Sequences(np.ascontiguousarray(items), np.ascontiguousarray(stamps), offsets)


def _is_sorted(users: np.ndarray, stamps: np.ndarray, items: np.ndarray) -> bool:
    """True when rows are already in ``(user, timestamp, item)`` lexicographic order."""
    if len(users) < 2:
        return True
    du, dt, di = np.diff(users), np.diff(stamps), np.diff(items)
    return bool(np.all((du > 0) | ((du == 0) & ((dt > 0) | ((dt == 0) & (di >= 0))))))


# ----------------------------------------------------------------------------------------------------------
# Leave-one-out split
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaveOneOut:
    """The leave-one-out split of full sequences.

    For a user with ``n >= 3`` events: the last event is the test target, the second last the validation
    target and the first ``n - 2`` events are the training part. Users with fewer than 3 events (1 or 2)
    put all their events in the training part and are **not evaluated** in either split (every evaluated
    user then has at least one history event in both splits). MovieLens users all have >= 20 events.

    Attributes:
        sequences: the full sequences (row ``r`` = user ``r + 1``).
        num_items: ``N``.
        train: (U rows) the training part of every user, same row layout as ``sequences``.
    """

    sequences: Sequences
    num_items: int
    train: Sequences

    @property
    def evaluated(self) -> np.ndarray:
        """(U,) bool, True for users with >= 3 events (the ones with valid and test targets)."""
        return self.sequences.lengths >= 3

    def _check(self, split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")

    def targets(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Evaluated users and their target items for ``split`` ("valid" or "test").

        Returns:
            users: (M,) int64 1-based ids, increasing. targets: (M,) int64 item ids.
        """
        self._check(split)
        rows = np.flatnonzero(self.evaluated)
        back = 1 if split == "test" else 2
        return self.sequences.user_ids[rows], self.sequences.items[self.sequences.offsets[rows + 1] - back]

    def target_timestamps(self, split: str) -> np.ndarray:
        """(M,) int64 timestamps of the targets of ``split``, same order as :meth:`targets`."""
        self._check(split)
        rows = np.flatnonzero(self.evaluated)
        back = 1 if split == "test" else 2
        return self.sequences.timestamps[self.sequences.offsets[rows + 1] - back]

    def history(self, split: str) -> Sequences:
        """Everything strictly before the target, one row per evaluated user (order of :meth:`targets`).

        "valid": the training part; "test": the training part plus the validation item. ``users`` is set.
        """
        self._check(split)
        rows = np.flatnonzero(self.evaluated)
        back = 1 if split == "test" else 2
        keep = self.sequences.lengths[rows] - back
        return _csr_take(self.sequences, rows, np.zeros_like(keep), keep)


def leave_one_out(seq: Sequences, num_items: int) -> LeaveOneOut:
    """Split full sequences (row ``r`` = user ``r + 1``) into train / valid / test; see :class:`LeaveOneOut`."""
    lengths = seq.lengths
    keep = np.where(lengths >= 3, lengths - 2, lengths)  # users with < 3 events: all events train
    rows = np.arange(seq.num_rows, dtype=np.int64)
    train = _csr_take(seq, rows, np.zeros_like(keep), keep)
    train = Sequences(train.items, train.timestamps, train.offsets, seq.users)
    return LeaveOneOut(sequences=seq, num_items=num_items, train=train)


def load_split(dataset: str, *, source: str = "auto") -> LeaveOneOut:
    """The leave-one-out split of a MovieLens variant: ``load_movielens`` -> ``build_sequences`` -> ``leave_one_out``.

    Args:
        dataset: a MovieLens name (``ml-100k`` ...). source: passed to ``load_movielens``.

    Returns:
        :class:`LeaveOneOut` over all ``num_users`` users and ``num_items`` items of the dataset.
    """
    ml = load_movielens(dataset, source=source)
    return leave_one_out(build_sequences(ml.interactions, ml.num_users), ml.num_items)


# ----------------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """A right-padded batch (0 = padding). ``B`` rows, ``T`` = ``max_seq_len`` columns.

    Attributes:
        ids: (B, T) int64 item ids; row b holds ``lengths[b]`` events then zeros.
        timestamps: (B, T) int64 seconds, 0 where padding.
        lengths: (B,) int64 number of real events per row.
        users: (B,) int64 user ids.
        targets: (B,) int64 the next item after the history (evaluation), None for training windows.
        next_ids: (B, T) int64 the item following each position (training), 0 where padding; None in eval.
    """

    ids: torch.Tensor
    timestamps: torch.Tensor
    lengths: torch.Tensor
    users: torch.Tensor
    targets: torch.Tensor | None = None
    next_ids: torch.Tensor | None = None

    def _map(self, fn: Any) -> Batch:
        return Batch(**{k: (None if v is None else fn(v)) for k, v in self.__dict__.items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Pinned copy (lets ``DataLoader(pin_memory=True)`` handle Batch)."""
        return self._map(lambda t: t.pin_memory())

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _gather_padded(values: np.ndarray, start: np.ndarray, n: np.ndarray, width: int) -> np.ndarray:
    """(B, width) array with ``values[start[b] + j]`` for ``j < n[b]`` and 0 elsewhere (vectorised)."""
    cols = np.arange(width, dtype=np.int64)
    mask = cols[None, :] < n[:, None]  # (B, width)
    if len(values) == 0:
        return np.zeros(mask.shape, dtype=np.int64)
    idx = np.minimum(start[:, None] + cols[None, :], len(values) - 1)  # (B, width)
    return np.where(mask, values[idx], 0)


def pad_batch(
    seqs: Sequences, rows: np.ndarray, max_seq_len: int, targets: np.ndarray | None = None
) -> Batch:
    """Right-padded batch of rows ``rows`` of ``seqs``, keeping the LAST ``max_seq_len`` events of each.

    Args:
        seqs: sequences (full, train part, or a split history).
        rows: (B,) int row indices into ``seqs`` (0-based).
        max_seq_len: ``T``, the width of the batch.
        targets: (B,) int64 next items, or None.

    Returns:
        Batch with ids/timestamps (B, T), lengths (B,) = min(row length, T), users (B,), targets (B,) or None.
    """
    if max_seq_len < 1:
        raise ConfigError(f"max_seq_len must be >= 1, got {max_seq_len}")
    rows = np.asarray(rows, dtype=np.int64)
    end = seqs.offsets[rows + 1]  # (B,)
    n = np.minimum(end - seqs.offsets[rows], max_seq_len)  # (B,)
    start = end - n
    return Batch(
        ids=torch.from_numpy(_gather_padded(seqs.items, start, n, max_seq_len)),
        timestamps=torch.from_numpy(_gather_padded(seqs.timestamps, start, n, max_seq_len)),
        lengths=torch.from_numpy(n),
        users=torch.from_numpy(seqs.user_ids[rows].copy()),
        targets=None if targets is None else torch.as_tensor(np.asarray(targets, dtype=np.int64)),
    )


class TrainWindows(Dataset):
    """One training window per user: the last ``max_seq_len + 1`` events of the user's training part.

    Inputs are the window without its last event, ``next_ids`` the window shifted by one, so position ``t``
    learns to predict ``next_ids[t]``. Users whose training part has fewer than 2 events have nothing to
    predict and are left out. ``__getitems__`` builds a whole :class:`Batch` at once (vectorised); the
    DataLoader from :func:`train_loader` uses it. ``__getitem__`` returns one window as a dict of tensors.
    """

    def __init__(self, split: LeaveOneOut, max_seq_len: int) -> None:
        if max_seq_len < 1:
            raise ConfigError(f"max_seq_len must be >= 1, got {max_seq_len}")
        self.seqs = split.train
        self.max_seq_len = max_seq_len
        self.rows = np.flatnonzero(self.seqs.lengths >= 2)  # (W,) rows with something to predict

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> Batch:
        rows = self.rows[np.asarray(indices, dtype=np.int64)]  # (B,)
        seqs, T = self.seqs, self.max_seq_len
        end = seqs.offsets[rows + 1]
        w = np.minimum(end - seqs.offsets[rows], T + 1)  # (B,) window length, >= 2
        start, n = end - w, w - 1  # inputs start at `start`, targets at `start + 1`
        return Batch(
            ids=torch.from_numpy(_gather_padded(seqs.items, start, n, T)),  # (B, T)
            timestamps=torch.from_numpy(_gather_padded(seqs.timestamps, start, n, T)),  # (B, T)
            lengths=torch.from_numpy(n),  # (B,)
            users=torch.from_numpy(seqs.user_ids[rows].copy()),  # (B,)
            next_ids=torch.from_numpy(_gather_padded(seqs.items, start + 1, n, T)),  # (B, T)
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        b = self.__getitems__([index])
        return {"ids": b.ids[0], "timestamps": b.timestamps[0], "lengths": b.lengths[0],
                "users": b.users[0], "next_ids": b.next_ids[0]}


def collate_batch(data: Batch | list[dict[str, torch.Tensor]]) -> Batch:
    """Collate for :class:`TrainWindows`: passes a Batch through, stacks a list of single windows."""
    if isinstance(data, Batch):
        return data
    return Batch(**{k: torch.stack([d[k] for d in data]) for k in data[0]})


def train_loader(
    split: LeaveOneOut, max_seq_len: int, batch_size: int, shuffle: bool = True, seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """DataLoader over :class:`TrainWindows` yielding :class:`Batch` (ids, timestamps, lengths, users, next_ids).

    Shuffling uses a ``torch.Generator`` seeded with ``seed``: the same seed gives the same batches, epoch
    after epoch (each new iteration continues the generator's stream).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TrainWindows(split, max_seq_len), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
        collate_fn=collate_batch, generator=generator,
    )


def eval_batches(split: LeaveOneOut, which: str, max_seq_len: int, batch_size: int) -> Iterator[Batch]:
    """Evaluation batches for split ``which``: the last ``max_seq_len`` events before the target, and the target.

    Yields Batch with ids/timestamps (B, T), lengths (B,), users (B,), targets (B,); users in increasing order.
    """
    history = split.history(which)
    _, targets = split.targets(which)
    for lo in range(0, history.num_rows, batch_size):
        rows = np.arange(lo, min(lo + batch_size, history.num_rows), dtype=np.int64)
        yield pad_batch(history, rows, max_seq_len, targets=targets[rows])


# ----------------------------------------------------------------------------------------------------------
# Summary, synthetic data and benchmark
# ----------------------------------------------------------------------------------------------------------


def dataset_summary(name: str, *, source: str = "auto") -> dict[str, Any]:
    """Size and sequence-length statistics of a MovieLens dataset (``python -m cobra data``).

    Args:
        name: dataset name (see ``cobra.movielens.DATASETS``); source: passed to ``load_movielens``.

    Returns:
        dict with keys dataset, users, items, interactions, min_seq_len, median_seq_len (float), max_seq_len.
    """
    ml = load_movielens(name, source=source)
    lengths = build_sequences(ml.interactions, ml.num_users).lengths
    return {
        "dataset": name,
        "users": int(ml.num_users),
        "items": int(ml.num_items),
        "interactions": int(len(ml.interactions)),
        "min_seq_len": int(lengths.min()),
        "median_seq_len": float(np.median(lengths)),
        "max_seq_len": int(lengths.max()),
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
