"""Sequences, leave-one-out split, padded batches (cobra.data) and the synthetic benchmark (cobra.bench.data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cobra.bench.data import bench_data
from cobra.config import ConfigError
from cobra.data import (
    Batch,
    DataError,
    Sequences,
    TrainWindows,
    build_sequences,
    collate_batch,
    eval_batches,
    leave_one_out,
    pad_batch,
    synthetic_movielens,
    train_loader,
)

# Hand-worked example. 5 users, user 4 has no events.
#   user 1: (item, t) = (5,100) (3,50) (7,100) (2,200) -> 3 5 7 2   (tie at t=100 broken by item: 5 < 7)
#   user 2: (4,10)                                     -> 4         (1 event: train only, not evaluated)
#   user 3: (6,30) (1,30)                              -> 1 6       (2 events, tied: train only)
#   user 5: (2,1) (4,1) (3,1) (1,2) (5,3)              -> 2 3 4 1 5
EVENTS = [
    (1, 5, 100), (1, 3, 50), (1, 7, 100), (1, 2, 200),
    (2, 4, 10),
    (3, 6, 30), (3, 1, 30),
    (5, 2, 1), (5, 4, 1), (5, 3, 1), (5, 1, 2), (5, 5, 3),
]
NUM_USERS, NUM_ITEMS = 5, 7


def frame(events=EVENTS, seed=0) -> pd.DataFrame:
    df = pd.DataFrame(events, columns=["user", "item", "timestamp"])
    df["rating"] = np.float32(4.0)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order


def rows_of(seq: Sequences) -> list[list[int]]:
    return [seq.row(r)[0].tolist() for r in range(seq.num_rows)]


@pytest.fixture
def split():
    return leave_one_out(build_sequences(frame(), NUM_USERS), NUM_ITEMS)


def test_build_sequences_hand_example():
    seq = build_sequences(frame(), NUM_USERS)
    assert seq.offsets.tolist() == [0, 4, 5, 7, 7, 12]
    assert rows_of(seq) == [[3, 5, 7, 2], [4], [1, 6], [], [2, 3, 4, 1, 5]]
    assert seq.row(0)[1].tolist() == [50, 100, 100, 200]
    assert seq.lengths.tolist() == [4, 1, 2, 0, 5]
    assert seq.user_ids.tolist() == [1, 2, 3, 4, 5]
    assert seq.items.dtype == np.int64 and seq.timestamps.dtype == np.int64


def test_build_sequences_is_order_independent_and_skips_sorted_input():
    ref = build_sequences(frame(seed=0), NUM_USERS)
    for seed in range(1, 5):
        other = build_sequences(frame(seed=seed), NUM_USERS)
        np.testing.assert_array_equal(other.items, ref.items)
        np.testing.assert_array_equal(other.timestamps, ref.timestamps)
    ordered = frame().sort_values(["user", "timestamp", "item"])
    np.testing.assert_array_equal(build_sequences(ordered, NUM_USERS).items, ref.items)


def test_build_sequences_matches_lexsort_on_random_data():
    rng = np.random.default_rng(0)
    n = 5000
    df = pd.DataFrame({"user": rng.integers(1, 50, n), "item": rng.integers(1, 30, n),
                       "timestamp": rng.integers(0, 20, n) * 10**9})
    seq = build_sequences(df, 60)
    order = np.lexsort((df.item, df.timestamp, df.user))
    np.testing.assert_array_equal(seq.items, df.item.to_numpy()[order])
    np.testing.assert_array_equal(seq.timestamps, df.timestamp.to_numpy()[order])
    np.testing.assert_array_equal(seq.lengths, np.bincount(df.user, minlength=61)[1:])


def test_build_sequences_errors_name_the_problem():
    with pytest.raises(DataError, match="timestamp"):
        build_sequences(frame().drop(columns="timestamp"), NUM_USERS)
    with pytest.raises(DataError, match="num_users"):
        build_sequences(frame(), 3)
    bad = frame()
    bad.loc[0, "item"] = 0
    with pytest.raises(DataError, match="padding"):
        build_sequences(bad, NUM_USERS)


def test_leave_one_out_hand_example(split):
    assert rows_of(split.train) == [[3, 5], [4], [1, 6], [], [2, 3, 4]]
    assert split.evaluated.tolist() == [True, False, False, False, True]
    users, targets = split.targets("test")
    assert users.tolist() == [1, 5] and targets.tolist() == [2, 5]
    users, targets = split.targets("valid")
    assert users.tolist() == [1, 5] and targets.tolist() == [7, 1]
    assert split.target_timestamps("test").tolist() == [200, 3]
    valid, test = split.history("valid"), split.history("test")
    assert rows_of(valid) == [[3, 5], [2, 3, 4]] and valid.user_ids.tolist() == [1, 5]
    assert rows_of(test) == [[3, 5, 7], [2, 3, 4, 1]] and test.user_ids.tolist() == [1, 5]
    assert test.row(1)[1].tolist() == [1, 1, 1, 2]
    with pytest.raises(ConfigError, match="valid"):
        split.targets("train")


def test_pad_batch_keeps_last_events_and_pads_right():
    seq = build_sequences(frame(), NUM_USERS)
    b = pad_batch(seq, np.array([0, 1, 3, 4]), max_seq_len=3, targets=np.array([1, 2, 3, 4]))
    assert b.ids.tolist() == [[5, 7, 2], [4, 0, 0], [0, 0, 0], [4, 1, 5]]
    assert b.timestamps.tolist() == [[100, 100, 200], [10, 0, 0], [0, 0, 0], [1, 2, 3]]
    assert b.lengths.tolist() == [3, 1, 0, 3]
    assert b.users.tolist() == [1, 2, 4, 5]
    assert b.targets.tolist() == [1, 2, 3, 4] and b.next_ids is None
    assert b.ids.dtype == b.timestamps.dtype == b.lengths.dtype == b.users.dtype == torch.int64
    wide = pad_batch(seq, np.array([4]), max_seq_len=7)
    assert wide.ids.tolist() == [[2, 3, 4, 1, 5, 0, 0]] and wide.targets is None
    moved = b.to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.ids, b.ids) and len(moved) == 4


def test_eval_batches(split):
    batches = list(eval_batches(split, "test", max_seq_len=3, batch_size=1))
    assert len(batches) == 2
    assert batches[0].ids.tolist() == [[3, 5, 7]] and batches[0].targets.tolist() == [2]
    assert batches[1].ids.tolist() == [[3, 4, 1]]
    assert batches[1].users.tolist() == [5] and batches[1].targets.tolist() == [5]
    (valid,) = eval_batches(split, "valid", max_seq_len=4, batch_size=8)
    assert valid.ids.tolist() == [[3, 5, 0, 0], [2, 3, 4, 0]]
    assert valid.lengths.tolist() == [2, 3] and valid.targets.tolist() == [7, 1]


def test_train_windows_shapes_and_targets(split):
    ds = TrainWindows(split, max_seq_len=2)
    assert len(ds) == 3  # users 1, 3, 5 have >= 2 training events
    b = ds.__getitems__([0, 1, 2])
    assert b.ids.tolist() == [[3, 0], [1, 0], [2, 3]]
    assert b.next_ids.tolist() == [[5, 0], [6, 0], [3, 4]]
    assert b.timestamps.tolist() == [[50, 0], [30, 0], [1, 1]]
    assert b.lengths.tolist() == [1, 1, 2] and b.users.tolist() == [1, 3, 5] and b.targets is None
    assert b.query_time.tolist() == [100, 30, 1]  # the time of each window's last target
    one = ds[2]
    assert one["ids"].tolist() == [2, 3] and one["next_ids"].tolist() == [3, 4]
    stacked = collate_batch([ds[0], ds[2]])  # the per-item path gives the same batch
    assert stacked.ids.tolist() == [[3, 0], [2, 3]] and stacked.next_ids.tolist() == [[5, 0], [3, 4]]
    wide = TrainWindows(split, max_seq_len=5).__getitems__([2])
    assert wide.ids.tolist() == [[2, 3, 0, 0, 0]] and wide.next_ids.tolist() == [[3, 4, 0, 0, 0]]


def test_train_windows_next_ids_shift_inputs():
    df = synthetic_movielens(num_users=40, num_items=50, num_interactions=2000, seed=3)
    loo = leave_one_out(build_sequences(df, 40), 50)
    for b in train_loader(loo, max_seq_len=16, batch_size=7, shuffle=False, windows="last"):
        assert b.ids.shape == b.next_ids.shape == (len(b), 16)
        n = b.lengths
        assert torch.all((n >= 1) & (n <= 16))
        pos = torch.arange(16)
        real = pos[None, :] < n[:, None]
        assert torch.equal(b.ids != 0, real) and torch.equal(b.next_ids != 0, real)
        shifted = real[:, 1:]  # next_ids[t] == ids[t + 1] wherever both are real
        assert torch.equal(b.next_ids[:, :-1][shifted], b.ids[:, 1:][shifted])
        # the last real next_id is the user's last training event
        last = b.next_ids[torch.arange(len(b)), n - 1]
        rows = (b.users - 1).numpy()
        assert last.tolist() == loo.train.items[loo.train.offsets[rows + 1] - 1].tolist()


@pytest.mark.parametrize("T", [1, 3, 16, 200])
def test_all_windows_make_every_training_event_a_target_once(T):
    df = synthetic_movielens(num_users=40, num_items=50, num_interactions=2000, seed=3)
    loo = leave_one_out(build_sequences(df, 40), 50)
    ds = TrainWindows(loo, max_seq_len=T)  # windows="all" is the default
    seen: dict[int, list[tuple[int, int, int]]] = {}  # user -> (window end, target, its time) per target
    b = ds.__getitems__(list(range(len(ds))))
    for r in range(len(b)):
        n, u = int(b.lengths[r]), int(b.users[r])
        assert 1 <= n <= T
        row = loo.train.items[loo.train.offsets[u - 1]:loo.train.offsets[u]]
        times = loo.train.timestamps[loo.train.offsets[u - 1]:loo.train.offsets[u]]
        end = int(ds.ends[r] - loo.train.offsets[u - 1])  # one past the window's last event, within the user
        start = end - n - 1
        assert b.ids[r, :n].tolist() == row[start:end - 1].tolist()  # inputs: the events before each target
        assert b.next_ids[r, :n].tolist() == row[start + 1:end].tolist()
        assert int(b.query_time[r]) == times[end - 1]  # the request time: the last target's
        seen.setdefault(u, []).extend(zip(range(start + 1, end), row[start + 1:end].tolist(), strict=True))
    lengths = loo.train.lengths
    assert ds.num_targets == int((lengths[lengths >= 2] - 1).sum()) == sum(len(v) for v in seen.values())
    for u, targets in seen.items():  # every event but the user's first, each exactly once
        assert sorted(i for i, _ in targets) == list(range(1, int(lengths[u - 1])))
    assert len(ds) == int(np.ceil((lengths[lengths >= 2] - 1) / T).sum())
    if T >= int(lengths.max()):  # a length that covers every history: one window per user, as "last"
        last = TrainWindows(loo, max_seq_len=T, windows="last")
        assert np.array_equal(ds.starts, last.starts) and np.array_equal(ds.ends, last.ends)


def test_train_windows_refuses_an_unknown_mode(split):
    with pytest.raises(ConfigError, match="unknown windows 'every'.*'all', 'last'"):
        TrainWindows(split, 4, windows="every")


def test_train_loader_is_deterministic_under_seed():
    df = synthetic_movielens(num_users=60, num_items=40, num_interactions=1800, seed=1)
    loo = leave_one_out(build_sequences(df, 60), 40)

    def users(seed):
        return [b.users.tolist() for b in train_loader(loo, 8, batch_size=16, seed=seed, windows="last")]

    first = users(0)
    assert first == users(0)
    assert first != users(1)
    assert sorted(sum(first, [])) == list(range(1, 61))  # every user once per epoch
    loader = train_loader(loo, 8, batch_size=16, seed=0, windows="last")
    assert [b.users.tolist() for b in loader] == first  # first epoch of a fresh loader
    plain = [b.users.tolist() for b in train_loader(loo, 8, batch_size=16, shuffle=False, windows="last")]
    assert sum(plain, []) == list(range(1, 61))


def test_synthetic_movielens_shape():
    df = synthetic_movielens(num_users=500, num_items=300, num_interactions=40_000, seed=0)
    assert list(df.columns) == ["user", "item", "rating", "timestamp"] and len(df) == 40_000
    assert df.dtypes.to_dict() == {"user": np.int64, "item": np.int64, "rating": np.float32,
                                   "timestamp": np.int64}
    seq = build_sequences(df, 500)
    assert seq.lengths.min() >= 20 and seq.lengths.max() > 4 * np.median(seq.lengths)  # heavy tail
    assert df.item.between(1, 300).all() and df.user.between(1, 500).all()
    counts = np.sort(np.bincount(df.item, minlength=301)[1:])[::-1]
    assert counts[:30].sum() > 3 * counts[-30:].sum()  # skewed popularity
    gaps = np.diff(seq.timestamps)[np.diff(np.repeat(np.arange(500), seq.lengths)) == 0]
    assert (gaps >= 0).all() and 0 < (gaps == 0).mean() < 0.3  # chronological, with some ties
    again = synthetic_movielens(num_users=500, num_items=300, num_interactions=40_000, seed=0)
    pd.testing.assert_frame_equal(df, again)
    with pytest.raises(ConfigError):
        synthetic_movielens(num_users=100, num_interactions=100)


def test_bench_data_small():
    out = bench_data(200_000)
    assert set(out) == {"interactions", "seconds", "interactions_per_second"}
    assert out["interactions"] == 200_000 and out["seconds"] > 0 and out["interactions_per_second"] > 0
