"""Full-catalogue ranking metrics (HR@K, NDCG@K, MRR), the evaluator and two reference recommenders.

Explained in chapter 01 (book/01_data.py).

Protocol (the HSTU paper's MovieLens evaluation): every user with a target is scored against all ``N`` items;
column 0 (padding) and the items of the user's history are removed from the ranking, except the target itself,
which is always kept.

Ties are handled exactly: a tied score is ranked as if ties were broken uniformly at random, and the
metrics are the *expected* values under that random order (see :func:`rank_metrics`). A recommender that
gives every item the same score therefore gets exactly the metrics of a random ranking, never the
optimistic or pessimistic extreme.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from cobra.config import ConfigError
from cobra.data import Batch, LeaveOneOut, eval_batches, history_mask, load_split  # noqa: F401 (history_mask re-exported)

KS = (1, 5, 10, 50, 200)


def metric_names(ks: Iterable[int] = KS) -> list[str]:
    """Metric keys in report order: hr@k for each k, ndcg@k for each k, then mrr."""
    ks = tuple(ks)
    return [f"hr@{k}" for k in ks] + [f"ndcg@{k}" for k in ks] + ["mrr"]


def _prefix_tables(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefix sums over 0-based ranks r = 0..n-1, float64, each of shape (n + 1,).

    ``dcg[m] = sum_{r<m} 1/log2(r+2)`` and ``rr[m] = sum_{r<m} 1/(r+1)``.
    """
    r = torch.arange(n, dtype=torch.float64, device=device)
    zero = torch.zeros(1, dtype=torch.float64, device=device)
    dcg = torch.cat([zero, torch.cumsum(1.0 / torch.log2(r + 2.0), 0)])
    rr = torch.cat([zero, torch.cumsum(1.0 / (r + 1.0), 0)])
    return dcg, rr


def rank_metrics(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None, ks: Iterable[int] = KS
) -> dict[str, torch.Tensor]:
    """Per-user HR@K, NDCG@K and MRR of the target, exact under uniform random tie-breaking.

    Candidates of row ``b`` are items 1..N that are not excluded; the target ``targets[b]`` is always a
    candidate even if ``exclude[b, target]`` is True (an item seen before may be the next one). Column 0
    is never a candidate. Let, among the candidates other than the target,

    * ``g`` = number with a score strictly greater than the target's,
    * ``e`` = number with a score equal to the target's.

    Breaking ties uniformly at random puts the target at 0-based rank ``r`` uniform on ``{g, ..., g + e}``.
    The metrics are expectations over that ``r``::

        HR@K   = P(r < K)                  = (min(g+e+1, K) - min(g, K)) / (e + 1)
        NDCG@K = E[1{r < K} / log2(r + 2)] = (DCG[min(g+e+1, K)] - DCG[min(g, K)]) / (e + 1)
        MRR    = E[1 / (r + 1)]            = (RR[g+e+1] - RR[g]) / (e + 1)

    with prefix sums ``DCG[m] = sum_{r<m} 1/log2(r+2)`` and ``RR[m] = sum_{r<m} 1/(r+1)`` precomputed in
    float64, so each user costs O(1) after the O(N) comparison pass. With no ties (e = 0) these are the
    usual deterministic values (there is one relevant item, so the ideal DCG is 1). NaN scores are refused.

    Args:
        scores: (B, N+1) float, higher is better.
        targets: (B,) int64 in 1..N.
        exclude: (B, N+1) bool, True = remove from the ranking (the user's history), or None.
        ks: cut-offs K.

    Returns:
        dict of (B,) float64 tensors keyed by :func:`metric_names` (``hr@K``, ``ndcg@K``, ``mrr``).
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (B, N+1) and targets (B,); got {tuple(scores.shape)}, "
                         f"{tuple(targets.shape)}")
    n_cols = scores.shape[1]
    targets = targets.to(scores.device, torch.int64)
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= n_cols):
        raise ValueError(f"targets must be item ids in 1..{n_cols - 1}; got {int(targets.min())}.."
                         f"{int(targets.max())}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a recommender must return finite (or -inf) scores")
    candidate = torch.ones_like(scores, dtype=torch.bool)  # (B, N+1)
    if exclude is not None:
        candidate &= ~exclude.to(scores.device, torch.bool)
    candidate[:, 0] = False
    rows = torch.arange(scores.shape[0], device=scores.device)
    candidate[rows, targets] = False  # the target is counted apart from the others
    target_score = scores[rows, targets].unsqueeze(1)  # (B, 1)
    g = ((scores > target_score) & candidate).sum(1)  # (B,) int64
    e = ((scores == target_score) & candidate).sum(1)  # (B,)
    dcg, rr = _prefix_tables(n_cols, scores.device)
    lo, hi, count = g, g + e + 1, (e + 1).to(torch.float64)  # ranks lo..hi-1, each with prob 1/count
    out: dict[str, torch.Tensor] = {}
    ks = tuple(ks)
    for k in ks:
        out[f"hr@{k}"] = (hi.clamp(max=k) - lo.clamp(max=k)).to(torch.float64) / count
    for k in ks:
        out[f"ndcg@{k}"] = (dcg[hi.clamp(max=k)] - dcg[lo.clamp(max=k)]) / count
    out["mrr"] = (rr[hi] - rr[lo]) / count
    return out


class Recommender(Protocol):
    """Anything that scores the whole catalogue for a batch of histories."""

    def score(self, batch: Batch) -> torch.Tensor:
        """(B, N+1) float scores, higher is better; column 0 is ignored."""
        ...


class Evaluator:
    """Full-catalogue leave-one-out evaluation of a split.

    The recommender sees the last ``max_seq_len`` events before the target (:func:`cobra.data.eval_batches`);
    the ranking removes the user's *whole* history before the target (not only the last ``max_seq_len``
    items), keeping the target itself. Each batch carries that set as ``batch.exclude``
    (:func:`cobra.data.eval_batches`), so a decoder that cuts the catalogue to a beam (TIGER, COBRA's
    ``beam``) leaves out the same items before it cuts, and ``batch.query_time``, the target's timestamp
    (the request time). Metrics are exact expectations under
    random tie-breaking (:func:`rank_metrics`).

    Args:
        split: the leave-one-out split.
        which: "valid" or "test".
        max_seq_len: history length shown to the recommender.
        batch_size: users per batch.
        ks: cut-offs K.
        progress: show a tqdm bar; None = only when stderr is a terminal.
    """

    def __init__(
        self, split: LeaveOneOut, which: str = "test", max_seq_len: int = 200, batch_size: int = 512,
        ks: Iterable[int] = KS, progress: bool | None = None,
    ) -> None:
        self.split, self.which, self.max_seq_len, self.batch_size = split, which, max_seq_len, batch_size
        self.ks = tuple(ks)
        self.progress = progress
        self.history = split.history(which)  # validates `which`
        self.num_users = self.history.num_rows

    def evaluate(self, recommender: Recommender, device: torch.device | str = "cpu",
                 per_user: Iterable[str] = ()) -> dict[str, Any]:
        """Mean metrics over the evaluated users.

        Args:
            recommender: anything with ``score(batch) -> (B, N+1)``.
            device: where batches go.
            per_user: metric names (``"ndcg@10"`` ...) to also return user by user, for paired tests.

        Returns:
            dict with keys ``hr@K`` and ``ndcg@K`` for each K, ``mrr`` (floats) and ``users`` (int); with
            ``per_user``, also ``per_user``: ``{name: (M,) float64 array}`` in the order of
            :meth:`cobra.data.LeaveOneOut.targets`.
        """
        names = metric_names(self.ks)
        keep = list(per_user)
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise ValueError(f"unknown per-user metrics {unknown}; choose from {names}")
        sums = dict.fromkeys(names, 0.0)
        rows: dict[str, list[np.ndarray]] = {k: [] for k in keep}
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        module = recommender if isinstance(recommender, torch.nn.Module) else None
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            with torch.no_grad(), tqdm(total=self.num_users, desc=f"eval {self.which}", unit="user",
                                       disable=not show) as bar:
                for batch in eval_batches(self.split, self.which, self.max_seq_len, self.batch_size):
                    scores = recommender.score(batch.to(device))  # (B, N+1)
                    expected = (len(batch), self.split.num_items + 1)
                    if tuple(scores.shape) != expected:
                        raise ValueError(f"{type(recommender).__name__}.score returned shape "
                                         f"{tuple(scores.shape)}, expected (B, N+1) = {expected}")
                    metrics = rank_metrics(scores, batch.targets, batch.exclude, self.ks)  # {name: (B,)}
                    for k in names:
                        sums[k] += float(metrics[k].sum())
                    for k in keep:
                        rows[k].append(metrics[k].cpu().numpy())
                    bar.update(len(batch))
        finally:
            if module is not None:
                module.train(was_training)
        result: dict[str, float] = {k: (v / self.num_users if self.num_users else float("nan"))
                                    for k, v in sums.items()}
        result["users"] = self.num_users
        if keep:
            result["per_user"] = {k: np.concatenate(v) if v else np.zeros(0) for k, v in rows.items()}
        return result


class PopularRecommender:
    """Scores every item by its number of interactions in the training part (same list for every user).

    Items with equal counts get equal scores, so ties are resolved by :func:`rank_metrics`' expected rank
    (no hidden randomness).
    """

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None  # (N+1,) float32

    def fit(self, split: LeaveOneOut) -> PopularRecommender:
        counts = np.bincount(split.train.items, minlength=split.num_items + 1)[: split.num_items + 1]
        counts[0] = 0
        self.counts = torch.from_numpy(counts.astype(np.float32))
        return self

    def score(self, batch: Batch) -> torch.Tensor:
        if self.counts is None:
            raise RuntimeError("PopularRecommender is not fitted; call .fit(split) first")
        counts = self.counts.to(batch.ids.device)
        return counts.unsqueeze(0).expand(batch.ids.shape[0], -1)  # (B, N+1)


class RandomRecommender:
    """Independent uniform random scores, reproducible from ``seed`` (same batches -> same scores)."""

    def __init__(self, num_items: int, seed: int = 0) -> None:
        self.num_items = num_items
        self.generator = torch.Generator().manual_seed(seed)

    def score(self, batch: Batch) -> torch.Tensor:
        scores = torch.rand(batch.ids.shape[0], self.num_items + 1, generator=self.generator)  # (B, N+1)
        return scores.to(batch.ids.device)


BASELINES: dict[str, Callable[[LeaveOneOut, int], Recommender]] = {
    "popular": lambda split, seed: PopularRecommender().fit(split),
    "random": lambda split, seed: RandomRecommender(split.num_items, seed),
}


def evaluate_baseline(
    name: str, dataset: str = "ml-100k", split: str = "test", *, seed: int = 0, batch_size: int = 512,
    progress: bool | None = None, source: str = "auto",
) -> dict[str, str | int | float]:
    """Score a reference recommender on a MovieLens split (``python -m cobra eval --baseline NAME``).

    Args:
        name: key of :data:`BASELINES`. dataset: MovieLens name. split: "test" or "valid".
        seed: seed of the random baseline. batch_size: users per batch. progress: tqdm bar (None = on a TTY).
        source: passed to ``load_movielens``.

    Returns:
        dict with keys model, split, users, hr@1..hr@200, ndcg@1..ndcg@200, mrr.
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    loo = load_split(dataset, source=source)
    evaluator = Evaluator(loo, split, batch_size=batch_size, progress=progress)
    result = evaluator.evaluate(BASELINES[name](loo, seed))
    users = result.pop("users")
    return {"model": name, "split": split, "users": users, **result}
