"""Ranking metrics, the evaluator and the reference recommenders (cobra.metrics)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cobra.config import ConfigError
from cobra.data import build_sequences, leave_one_out, synthetic_movielens
from cobra.metrics import (
    BASELINES,
    KS,
    Evaluator,
    PopularRecommender,
    RandomRecommender,
    evaluate_baseline,
    history_mask,
    metric_names,
    rank_metrics,
)


def one(scores, target, exclude=None, ks=(1, 3, 5)):
    """Metrics of a single row as plain floats."""
    s = torch.tensor([scores], dtype=torch.float32)
    ex = None if exclude is None else torch.tensor([exclude])
    out = rank_metrics(s, torch.tensor([target]), ex, ks)
    return {k: float(v[0]) for k, v in out.items()}


def mask(n_cols, items):
    return [i in items for i in range(n_cols)]


def test_metric_names_order():
    assert metric_names((1, 10)) == ["hr@1", "hr@10", "ndcg@1", "ndcg@10", "mrr"]
    assert len(metric_names()) == 2 * len(KS) + 1


def test_no_ties():
    # items 1..5 scored .9 .5 .3 .1 .7 -> order 1, 5, 2, 3, 4; target 2 at rank 2 (0-based)
    m = one([0.0, 0.9, 0.5, 0.3, 0.1, 0.7], target=2)
    assert m["hr@1"] == 0 and m["hr@3"] == 1 and m["hr@5"] == 1
    assert m["ndcg@1"] == 0 and m["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert m["mrr"] == pytest.approx(1 / 3)


def test_ties_are_expected_values():
    # target 2 (.5) ties with item 3; items 1 (.9) and 5 (.7) above -> rank uniform on {2, 3}
    m = one([0.0, 0.9, 0.5, 0.5, 0.1, 0.7], target=2)
    assert m["hr@1"] == 0 and m["hr@3"] == pytest.approx(0.5) and m["hr@5"] == 1
    assert m["ndcg@3"] == pytest.approx(0.5 / math.log2(4))
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(5)) / 2)
    assert m["mrr"] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_constant_scores_equal_a_random_ranking():
    n = 10
    m = one([1.0] * (n + 1), target=4, ks=(1, 5, 10, 20))
    assert m["hr@1"] == pytest.approx(1 / n) and m["hr@5"] == pytest.approx(0.5)
    assert m["hr@10"] == pytest.approx(1.0) and m["hr@20"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx(sum(1 / (r + 1) for r in range(n)) / n)
    assert m["ndcg@5"] == pytest.approx(sum(1 / math.log2(r + 2) for r in range(5)) / n)


def test_exclusion_and_padding_column():
    scores = [99.0, 0.9, 0.5, 0.5, 0.1, 0.7]  # column 0 scores highest but is never ranked
    m = one(scores, target=2, exclude=mask(6, {1, 3}))  # only item 5 remains above: rank 1
    assert m["hr@1"] == 0 and m["hr@3"] == 1
    assert m["ndcg@3"] == pytest.approx(1 / math.log2(3)) and m["mrr"] == pytest.approx(0.5)


def test_target_in_history_is_never_excluded():
    scores = [0.0, 0.9, 0.5, 0.5, 0.1, 0.7]
    kept = one(scores, target=2, exclude=mask(6, {1, 2, 3}))  # 2 is in the history and is the target
    assert kept == one(scores, target=2, exclude=mask(6, {1, 3}))
    assert kept["mrr"] == pytest.approx(0.5)


def test_rank_metrics_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        one([0.0, float("nan"), 1.0], target=1)
    with pytest.raises(ValueError, match="1..2"):
        one([0.0, 1.0, 2.0], target=0)
    with pytest.raises(ValueError, match="targets"):
        rank_metrics(torch.zeros(2, 3), torch.ones(3, dtype=torch.int64), None)


def brute_force(scores: np.ndarray, target: int, exclude: np.ndarray, ks) -> dict[str, float]:
    """Average over every order of the candidates, ranking by score and breaking ties by that order."""
    cand = [i for i in range(1, len(scores)) if not exclude[i] or i == target]
    sums = dict.fromkeys(metric_names(ks), 0.0)
    perms = list(itertools.permutations(cand))
    for perm in perms:
        ranked = sorted(perm, key=lambda i: -scores[i])  # stable: ties keep the permutation's order
        r = ranked.index(target)
        for k in ks:
            sums[f"hr@{k}"] += r < k
            sums[f"ndcg@{k}"] += (r < k) / math.log2(r + 2)
        sums["mrr"] += 1 / (r + 1)
    return {k: v / len(perms) for k, v in sums.items()}


@st.composite
def cases(draw):
    b = draw(st.integers(1, 3))
    n = draw(st.integers(1, 6))
    scores = np.array(draw(st.lists(st.lists(st.integers(0, 2), min_size=n + 1, max_size=n + 1),
                                    min_size=b, max_size=b)), dtype=np.float32)
    exclude = np.array(draw(st.lists(st.lists(st.booleans(), min_size=n + 1, max_size=n + 1),
                                     min_size=b, max_size=b)))
    targets = np.array(draw(st.lists(st.integers(1, n), min_size=b, max_size=b)))
    return scores, targets, exclude


@settings(max_examples=150, deadline=None)
@given(cases())
def test_rank_metrics_matches_brute_force(case):
    scores, targets, exclude = case
    ks = (1, 2, 3, 5)
    got = rank_metrics(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(exclude), ks)
    for b in range(len(targets)):
        want = brute_force(scores[b], int(targets[b]), exclude[b], ks)
        for k, v in want.items():
            assert float(got[k][b]) == pytest.approx(v, abs=1e-12), (k, b)


def test_history_mask():
    m = history_mask(np.array([3, 1, 2, 2]), np.array([0, 2, 2, 4]), num_items=4)
    assert m.tolist() == [mask(5, {1, 3}), mask(5, set()), mask(5, {2})]


# ------------------------------------------------------------------ evaluator
EVENTS = [  # (user, item, timestamp); 6 items
    (1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 4, 4), (1, 5, 5),  # valid 4, test 5
    (2, 2, 1), (2, 6, 2), (2, 2, 3), (2, 1, 4),  # test target 1; valid target 2 is also in its history
    (3, 3, 1), (3, 4, 2),  # 2 events: not evaluated
]


@pytest.fixture
def tiny():
    df = pd.DataFrame(EVENTS, columns=["user", "item", "timestamp"])
    return leave_one_out(build_sequences(df, 3), 6)


class Oracle:
    """Puts the target first and the user's last shown item second."""

    def score(self, batch):
        s = torch.zeros(len(batch), 7)
        s[torch.arange(len(batch)), batch.targets] = 2.0
        return s


class FixedScores:
    def __init__(self, vector):
        self.vector = torch.tensor(vector, dtype=torch.float32)

    def score(self, batch):
        return self.vector.expand(len(batch), -1)


def test_evaluator_oracle(tiny):
    for which in ("valid", "test"):
        out = Evaluator(tiny, which, max_seq_len=2, batch_size=1, progress=False).evaluate(Oracle())
        assert out["users"] == 2
        assert set(out) == set(metric_names()) | {"users"}
        assert all(out[k] == 1.0 for k in metric_names())


def test_evaluator_removes_whole_history(tiny):
    # Scores favour item 1, then 2, 3, 4, 5, 6. User 1 (test target 5, history 1 2 3 4) and user 2
    # (test target 1, history 2 6 2): with max_seq_len=1 the model sees one item, but the whole
    # history is removed, so user 1's target 5 is first (6 below it), user 2's target 1 is first.
    rec = FixedScores([0, 6, 5, 4, 3, 2, 1])
    out = Evaluator(tiny, "test", max_seq_len=1, batch_size=8, progress=False).evaluate(rec)
    assert out["hr@1"] == 1.0 and out["mrr"] == 1.0
    # valid: user 1 target 4 after 1 2 3 -> rank 0; user 2 target 2 (also in its history 2 6) ->
    # candidates 1 3 4 5 2: item 1 above -> rank 1
    out = Evaluator(tiny, "valid", max_seq_len=1, batch_size=1, progress=False).evaluate(rec)
    assert out["hr@1"] == pytest.approx(0.5) and out["mrr"] == pytest.approx((1 + 0.5) / 2)


def test_evaluator_matches_rank_metrics_on_random_scores():
    df = synthetic_movielens(num_users=50, num_items=40, num_interactions=1500, seed=2)
    loo = leave_one_out(build_sequences(df, 50), 40)
    rec = RandomRecommender(40, seed=5)
    out = Evaluator(loo, "test", max_seq_len=5, batch_size=7, progress=False).evaluate(rec)
    # recompute in one batch from the same random stream
    users, targets = loo.targets("test")
    hist = loo.history("test")
    scores = torch.rand(len(users), 41, generator=torch.Generator().manual_seed(5))
    per_user = rank_metrics(scores, torch.from_numpy(targets), history_mask(hist.items, hist.offsets, 40))
    for k in metric_names():
        assert out[k] == pytest.approx(float(per_user[k].mean()))
    assert out["users"] == 50


def test_evaluator_rejects_bad_shapes_and_split(tiny):
    with pytest.raises(ValueError, match="shape"):
        Evaluator(tiny, progress=False).evaluate(FixedScores([0, 1, 2]))
    with pytest.raises(ConfigError, match="valid"):
        Evaluator(tiny, "train")


def test_evaluator_restores_module_mode(tiny):
    class Module(torch.nn.Module):
        def score(self, batch):
            assert not self.training
            return Oracle().score(batch)

    model = Module().train()
    Evaluator(tiny, progress=False).evaluate(model)
    assert model.training


# ------------------------------------------------------------------ baselines
def test_popular_beats_random_on_skewed_data():
    df = synthetic_movielens(num_users=300, num_items=200, num_interactions=9000, seed=0)
    loo = leave_one_out(build_sequences(df, 300), 200)
    ev = Evaluator(loo, "test", max_seq_len=50, batch_size=64, progress=False)
    popular = ev.evaluate(BASELINES["popular"](loo, 0))
    random = ev.evaluate(BASELINES["random"](loo, 0))
    assert popular["hr@10"] > 1.5 * random["hr@10"] and popular["mrr"] > random["mrr"]
    # random is close to its expectation K / (candidates) ~ 10 / (200 - history)
    hist_sizes = loo.history("test").lengths
    expected = np.mean(np.minimum(10 / (200 - np.array([len(set(loo.history("test").row(r)[0]))
                                                         for r in range(len(hist_sizes))])), 1))
    assert random["hr@10"] == pytest.approx(expected, abs=0.05)


def test_popular_scores_are_train_counts_and_deterministic(tiny):
    rec = PopularRecommender().fit(tiny)
    # train parts: user 1 -> 1 2 3, user 2 -> 2 6, user 3 -> 3 4
    assert rec.counts.tolist() == [0, 1, 2, 2, 1, 0, 1]
    a = Evaluator(tiny, progress=False).evaluate(rec)
    assert a == Evaluator(tiny, progress=False).evaluate(PopularRecommender().fit(tiny))
    with pytest.raises(RuntimeError, match="fit"):
        PopularRecommender().score(None)


def test_evaluate_baseline_unknown_name():
    with pytest.raises(ConfigError, match="popular"):
        evaluate_baseline("nope")


def test_evaluate_baseline_ml100k():
    movielens = pytest.importorskip("cobra.movielens")
    try:
        movielens.load_movielens("ml-100k")
    except Exception as exc:  # data not obtainable here: the loader's own tests cover that
        pytest.skip(f"ml-100k not available: {exc}")
    out = evaluate_baseline("popular", "ml-100k")
    assert list(out)[:3] == ["model", "split", "users"]
    assert out["model"] == "popular" and out["split"] == "test" and out["users"] == 943
    assert set(out) == {"model", "split", "users", *metric_names()}
    assert 0 < out["hr@10"] < 1 and out["hr@200"] > out["hr@10"]
