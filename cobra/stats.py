"""Paired significance tests on per-user metrics: is model A better than model B on the same users?

Explained in chapter 11 (book/11_experiments.py). Two models evaluated on the same leave-one-out users give
two vectors of per-user NDCG@10 (:meth:`cobra.metrics.Evaluator.evaluate` with ``per_user``); their
difference is paired, user by user, which removes the large spread between easy and hard users. Each
user's value is first averaged over the seeds of a model, so the test compares models, not single runs.

* :func:`paired_bootstrap` -- resample users with replacement; the mean difference, its 95% interval and a
  two-sided p-value (how often the resampled mean difference lands on the other side of zero, doubled).
* :func:`wilcoxon` -- the Wilcoxon signed-rank test (scipy), which uses the ranks of the differences, not
  their size; users where both models score the same (most often both 0) carry no information and are
  dropped (``zero_method="wilcox"``).
* :func:`holm` -- Holm's step-down correction when one model is compared with several baselines.
* :func:`compare` -- all of it for one pair, as a JSON-able dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ALPHA = 0.05


def _pair(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired tests need two equal, non-empty 1-D arrays (one value per user); got "
                         f"{a.shape} and {b.shape}")
    return a, b


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, samples: int = 10_000,
                     seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over users with a bootstrap 95% interval and two-sided p-value.

    Args:
        a, b: (M,) per-user metric of two models on the same users, same order.
        samples: bootstrap resamples of the M users.
        seed: the resampling's seed (the result is a fixed function of the inputs).

    Returns:
        ``{"diff", "ci_low", "ci_high", "p"}``; ``p`` is ``2 * min(P(d* <= 0), P(d* >= 0))`` over the
        resampled mean differences ``d*`` (at least ``1 / samples``), capped at 1.
    """
    a, b = _pair(a, b)
    d = a - b  # (M,)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for lo in range(0, samples, 1000):  # (1000, M) index blocks keep memory small
        n = min(1000, samples - lo)
        means[lo:lo + n] = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    return {"diff": float(d.mean()), "ci_low": float(np.quantile(means, 0.025)),
            "ci_high": float(np.quantile(means, 0.975)), "p": float(min(1.0, max(p, 1 / samples)))}


def wilcoxon(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (ties at zero dropped).

    Returns:
        ``{"statistic", "p", "users"}``, ``users`` the number of non-zero differences it used (p = 1 when
        there are none).
    """
    from scipy.stats import wilcoxon as scipy_wilcoxon

    a, b = _pair(a, b)
    used = int(np.count_nonzero(a - b))
    if used == 0:
        return {"statistic": 0.0, "p": 1.0, "users": 0}
    result = scipy_wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return {"statistic": float(result.statistic), "p": float(result.pvalue), "users": used}


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (``{name: p}`` -> ``{name: adjusted p}``), monotone and capped at 1."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, running, out = len(order), 0.0, {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[name]))
        out[name] = running
    return out


def compare(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap and Wilcoxon of model ``a`` against model ``b`` on per-user values.

    Returns:
        ``{"diff", "ci_low", "ci_high", "p_bootstrap", "p_wilcoxon", "users"}`` (``users``: the M users).
    """
    boot, wil = paired_bootstrap(a, b, seed=seed), wilcoxon(a, b)
    return {"diff": boot["diff"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"], "p_bootstrap": boot["p"],
            "p_wilcoxon": wil["p"], "users": len(np.asarray(a))}
