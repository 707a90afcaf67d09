"""Paired significance tests: known answers, scipy agreement, and the corrections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cobra.stats import compare, holm, paired_bootstrap, wilcoxon


def test_bootstrap_finds_a_clear_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    better = base + 0.05 + 0.01 * rng.standard_normal(500)
    r = paired_bootstrap(better, base)
    assert r["diff"] == pytest.approx(np.mean(better - base))
    assert 0.04 < r["ci_low"] < r["diff"] < r["ci_high"] < 0.06 and r["p"] == pytest.approx(1e-4)
    noise = base + 0.1 * rng.standard_normal(500)
    null = paired_bootstrap(noise, base)
    assert null["ci_low"] < 0 < null["ci_high"] and null["p"] > 0.05
    assert paired_bootstrap(better, base) == r  # a fixed function of its inputs (seeded resampling)


def test_wilcoxon_matches_scipy_and_drops_ties():
    rng = np.random.default_rng(1)
    a, b = rng.random(200), rng.random(200)
    b[:50] = a[:50]  # 50 users where both models agree carry no information
    r = wilcoxon(a, b)
    want = scipy_stats.wilcoxon(a[50:], b[50:])
    assert r["users"] == 150 and r["p"] == pytest.approx(want.pvalue) and r["statistic"] == want.statistic
    assert wilcoxon(a, a) == {"statistic": 0.0, "p": 1.0, "users": 0}


def test_holm_is_the_step_down_correction():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3 x 0.01, max(2 x 0.03, ...), monotone
    assert holm({"x": 0.7, "y": 0.6}) == {"y": 1.0, "x": 1.0}


def test_compare_checks_its_inputs():
    with pytest.raises(ValueError, match="one value per user"):
        compare([0.1, 0.2], [0.1])
    r = compare([0.5, 0.0, 1.0, 0.2], [0.1, 0.0, 0.5, 0.1])
    assert set(r) == {"diff", "ci_low", "ci_high", "p_bootstrap", "p_wilcoxon", "users"} and r["users"] == 4
