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

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from cobra.config import ConfigError
from cobra.datasets import load_dataset
from cobra.movielens import DataError, sort_order
from cobra.synthetic import synthetic_movielens

__all__ = [
    "Batch", "DataError", "LeaveOneOut", "Sequences", "TrainWindows", "build_sequences",
    "collate_batch", "dataset_summary", "eval_batches", "leave_one_out", "load_split",
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
        sampled: (U,) bool, the users :meth:`sample_users` kept for evaluation, or None for all of them.
        timed: False when the log had no timestamps (``timestamps`` then hold positions in the file; the
            training loop turns the models' time bias off, see :func:`cobra.tables.read_tables`).
    """

    sequences: Sequences
    num_items: int
    train: Sequences
    sampled: np.ndarray | None = None
    timed: bool = True

    @property
    def evaluated(self) -> np.ndarray:
        """(U,) bool, True for users with >= 3 events (the ones with valid and test targets), among the
        :meth:`sample_users` sample when there is one."""
        evaluated = self.sequences.lengths >= 3
        return evaluated if self.sampled is None else evaluated & self.sampled

    @property
    def num_users(self) -> int:
        """``U``, every user (evaluated or not)."""
        return self.sequences.num_rows

    def sample_users(self, n: int, seed: int = 0) -> LeaveOneOut:
        """The same split with evaluation restricted to ``n`` random evaluated users (training data unchanged).

        Returns ``self`` when there are at most ``n`` evaluated users, so a chapter that samples on a large
        dataset computes exactly the same numbers on a small one.
        """
        rows = np.flatnonzero(self.evaluated)
        if len(rows) <= n:
            return self
        keep = np.zeros(self.num_users, dtype=bool)
        keep[np.random.default_rng(seed).choice(rows, size=n, replace=False)] = True
        return dataclasses.replace(self, sampled=keep)

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
    """The leave-one-out split of a dataset: ``load_dataset`` -> ``build_sequences`` -> ``leave_one_out``.

    Args:
        dataset: a name :func:`cobra.datasets.load_dataset` knows (``ml-100k``, ``ml-20m-synthetic``, one you
            imported ...). source: passed to ``load_dataset``.

    Returns:
        :class:`LeaveOneOut` over all ``num_users`` users and ``num_items`` items of the dataset.
    """
    ml = load_dataset(dataset, source=source)
    split = leave_one_out(build_sequences(ml.interactions, ml.num_users), ml.num_items)
    return split if ml.timed else dataclasses.replace(split, timed=False)


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
        query_time: (B,) int64 seconds, the request time: when the event that each row's last position
            predicts happened (training: the window's last target; evaluation: the target's timestamp,
            known when a recommendation is served). The HSTU time bias of the last position uses it
            (``model.request_time``); None = unknown, the last event's own time stands in.
        exclude: (B, N+1) bool, the items the ranking leaves out and a decoder must leave out before it cuts
            the catalogue to a beam (:func:`eval_batches` sets it: the user's whole history before the
            target, the target kept), or None (decoders then drop the items of ``ids``).
    """

    ids: torch.Tensor
    timestamps: torch.Tensor
    lengths: torch.Tensor
    users: torch.Tensor
    targets: torch.Tensor | None = None
    next_ids: torch.Tensor | None = None
    query_time: torch.Tensor | None = None
    exclude: torch.Tensor | None = None

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

    def excluded(self, num_items: int) -> torch.Tensor:
        """(B, N+1) bool items a decoder leaves out: :attr:`exclude` when set (the evaluator's set, the whole
        history), else the items of :attr:`ids` (:func:`seen_items`)."""
        return self.exclude.to(torch.bool) if self.exclude is not None else seen_items(self.ids, num_items)


def seen_items(ids: torch.Tensor, num_items: int) -> torch.Tensor:
    """(B, N + 1) bool, True where item ``i`` occurs in row ``b`` of ``ids`` (B, T) int64 (column 0 False)."""
    seen = torch.zeros(ids.shape[0], num_items + 1, dtype=torch.bool, device=ids.device)
    seen.scatter_(1, ids, True)
    seen[:, 0] = False
    return seen


def _gather_padded(values: np.ndarray, start: np.ndarray, n: np.ndarray, width: int) -> np.ndarray:
    """(B, width) array with ``values[start[b] + j]`` for ``j < n[b]`` and 0 elsewhere (vectorised)."""
    cols = np.arange(width, dtype=np.int64)
    mask = cols[None, :] < n[:, None]  # (B, width)
    if len(values) == 0:
        return np.zeros(mask.shape, dtype=np.int64)
    idx = np.minimum(start[:, None] + cols[None, :], len(values) - 1)  # (B, width)
    return np.where(mask, values[idx], 0)


def pad_batch(
    seqs: Sequences, rows: np.ndarray, max_seq_len: int, targets: np.ndarray | None = None,
    query_time: np.ndarray | None = None,
) -> Batch:
    """Right-padded batch of rows ``rows`` of ``seqs``, keeping the LAST ``max_seq_len`` events of each.

    Args:
        seqs: sequences (full, train part, or a split history).
        rows: (B,) int row indices into ``seqs`` (0-based).
        max_seq_len: ``T``, the width of the batch.
        targets: (B,) int64 next items, or None.
        query_time: (B,) int64 request times (the targets' timestamps), or None.

    Returns:
        Batch with ids/timestamps (B, T), lengths (B,) = min(row length, T), users (B,), targets (B,) or
        None, query_time (B,) or None.
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
        query_time=None if query_time is None else torch.as_tensor(np.asarray(query_time, dtype=np.int64)),
    )


WINDOWS = ("all", "last")


class TrainWindows(Dataset):
    """Training windows of at most ``max_seq_len + 1`` events cut from each user's training part.

    Inputs are a window without its last event, ``next_ids`` the window shifted by one, so position ``t``
    learns to predict ``next_ids[t]``. ``query_time`` is the time of the window's last event (the one the
    last position predicts).

    ``windows="all"`` (the default) cuts a user's training part, from its end, into consecutive windows
    that overlap by one event (a window's first input is the last target of the window before it), so every
    training event except the user's first is a target exactly once per epoch. A user with ``n`` training
    events gives ``ceil((n - 1) / max_seq_len)`` windows. ``windows="last"`` takes only the last window of
    each user (the most recent ``max_seq_len + 1`` events), so a user longer than that contributes only
    those targets. Users whose training part has fewer than 2 events have nothing to predict and are left
    out.

    ``__getitems__`` builds a whole :class:`Batch` at once (vectorised); ``__getitem__`` returns one window as
    a dict of tensors.

    Attributes:
        rows: (W,) int64 the user row of each window. ends: (W,) int64 one past each window's last event
            (an index into ``split.train.items``). starts: (W,) int64 each window's first event.
    """

    def __init__(self, split: LeaveOneOut, max_seq_len: int, windows: str = "all") -> None:
        if max_seq_len < 1:
            raise ConfigError(f"max_seq_len must be >= 1, got {max_seq_len}")
        if windows not in WINDOWS:
            raise ConfigError(f"unknown windows {windows!r}; choose one of {list(WINDOWS)}")
        self.seqs = split.train
        self.max_seq_len = max_seq_len
        self.windows = windows
        seqs, T = self.seqs, max_seq_len
        users = np.flatnonzero(seqs.lengths >= 2)  # rows with something to predict
        begin, end = seqs.offsets[users], seqs.offsets[users + 1]
        # Window k of a user (k = 0 is the most recent) ends at end - k*T; targets are end-k*T-T .. end-k*T-1.
        count = -(-(end - begin - 1) // T) if windows == "all" else np.ones_like(users)  # (U',) ceil
        self.rows = np.repeat(users, count)  # (W,)
        first = np.cumsum(count) - count  # (U',) index of each user's first window
        k = np.arange(len(self.rows), dtype=np.int64) - np.repeat(first, count)  # (W,) 0 = most recent
        self.ends = np.repeat(end, count) - k * T  # (W,)
        self.starts = np.maximum(np.repeat(begin, count), self.ends - T - 1)  # (W,)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_targets(self) -> int:
        """Target positions per epoch (each window's length minus one, summed)."""
        return int((self.ends - self.starts - 1).sum())

    def __getitems__(self, indices: list[int]) -> Batch:
        w = np.asarray(indices, dtype=np.int64)  # (B,)
        seqs, T = self.seqs, self.max_seq_len
        start, end = self.starts[w], self.ends[w]
        n = end - start - 1  # (B,) inputs per window, >= 1; targets start at `start + 1`
        return Batch(
            ids=torch.from_numpy(_gather_padded(seqs.items, start, n, T)),  # (B, T)
            timestamps=torch.from_numpy(_gather_padded(seqs.timestamps, start, n, T)),  # (B, T)
            lengths=torch.from_numpy(n),  # (B,)
            users=torch.from_numpy(seqs.user_ids[self.rows[w]].copy()),  # (B,)
            next_ids=torch.from_numpy(_gather_padded(seqs.items, start + 1, n, T)),  # (B, T)
            query_time=torch.from_numpy(seqs.timestamps[end - 1].copy()),  # (B,) time of the last target
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        b = self.__getitems__([index])
        return {"ids": b.ids[0], "timestamps": b.timestamps[0], "lengths": b.lengths[0],
                "users": b.users[0], "next_ids": b.next_ids[0], "query_time": b.query_time[0]}


def collate_batch(data: Batch | list[dict[str, torch.Tensor]]) -> Batch:
    """Collate for :class:`TrainWindows`: passes a Batch through, stacks a list of single windows."""
    if isinstance(data, Batch):
        return data
    return Batch(**{k: torch.stack([d[k] for d in data]) for k in data[0]})


def train_loader(
    split: LeaveOneOut, max_seq_len: int, batch_size: int, shuffle: bool = True, seed: int = 0,
    drop_last: bool = False, windows: str = "all",
) -> DataLoader:
    """DataLoader over :class:`TrainWindows` yielding :class:`Batch` (ids, timestamps, lengths, users, next_ids,
    query_time); ``windows`` as in :class:`TrainWindows`.

    Shuffling uses a ``torch.Generator`` seeded with ``seed``: the same seed gives the same batches, epoch
    after epoch (each new iteration continues the generator's stream).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TrainWindows(split, max_seq_len, windows), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
        collate_fn=collate_batch, generator=generator,
    )


def history_mask(items: np.ndarray, offsets: np.ndarray, num_items: int) -> torch.Tensor:
    """Dense (B, N+1) bool mask from CSR rows: ``mask[b, i]`` is True when item i is in row b.

    Args:
        items: (total,) int64 item ids of the B rows back to back. offsets: (B+1,) int64, starting at 0.
    """
    lengths = np.diff(offsets)
    mask = torch.zeros(len(lengths), num_items + 1, dtype=torch.bool)  # (B, N+1)
    rows = torch.from_numpy(np.repeat(np.arange(len(lengths), dtype=np.int64), lengths))  # (total,)
    mask[rows, torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64))] = True
    return mask


def eval_batches(split: LeaveOneOut, which: str, max_seq_len: int, batch_size: int) -> Iterator[Batch]:
    """Evaluation batches for split ``which``: the last ``max_seq_len`` events before the target, and the target.

    Yields Batch with ids/timestamps (B, T), lengths (B,), users (B,), targets (B,), query_time (B,), the
    targets' timestamps (the request time), and exclude (B, N+1): every item of the user's *whole* history
    before the target (not only the last ``max_seq_len``), the target itself kept. The evaluator removes
    exactly these from the ranking, and decoders that cut to a beam remove them first. Users in increasing
    order.
    """
    history = split.history(which)
    _, targets = split.targets(which)
    times = split.target_timestamps(which)
    for lo in range(0, history.num_rows, batch_size):
        hi = min(lo + batch_size, history.num_rows)
        rows = np.arange(lo, hi, dtype=np.int64)
        batch = pad_batch(history, rows, max_seq_len, targets=targets[rows], query_time=times[rows])
        a, b = history.offsets[lo], history.offsets[hi]
        exclude = history_mask(history.items[a:b], history.offsets[lo:hi + 1] - a, split.num_items)  # (B, N+1)
        exclude[torch.arange(len(rows)), batch.targets] = False  # the target stays a candidate (repeats)
        batch.exclude = exclude
        yield batch


# ----------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------


def dataset_summary(name: str, *, source: str = "auto") -> dict[str, Any]:
    """Size and sequence-length statistics of a dataset (``python -m cobra data``).

    Args:
        name: dataset name (see :func:`cobra.datasets.dataset_names`); source: passed to ``load_dataset``.

    Returns:
        dict with keys dataset, users, items, interactions, min_seq_len, median_seq_len (float),
        max_seq_len, and ``"synthetic": true`` / ``"timestamps": false`` where they hold.
    """
    ml = load_dataset(name, source=source)
    lengths = build_sequences(ml.interactions, ml.num_users).lengths
    return {
        "dataset": name,
        **({"synthetic": True} if ml.source == "synthetic" else {}),
        **({} if ml.timed else {"timestamps": False}),
        "users": int(ml.num_users),
        "items": int(ml.num_items),
        "interactions": int(len(ml.interactions)),
        "min_seq_len": int(lengths.min()),
        "median_seq_len": float(np.median(lengths)),
        "max_seq_len": int(lengths.max()),
    }
