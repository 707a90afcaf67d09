"""The tolerant output comparison behind nbval (cobra.nbcompare): rounding passes, real changes fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cobra.nbcompare import DEFAULT_RTOL, MAX_RTOL, cell_rtol, outputs_differ
from cobra.sid import SIDConfig, fit_semantic_ids
from cobra.sid_metrics import collision_rates

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------- the rule, on the cases seen
@pytest.mark.parametrize("ref, now", [
    ("inertia 756.0108", "inertia 756.0107"),  # last digit of a float32 sum on AVX2 vs AVX-512
    ("NDCG@50 0.1096", "NDCG@50 0.1095"),  # a metric after training, one unit in the last digit
    ("   K  rate\n0  16  0.229\n1  32  0.1", "   K    rate\n0  16  0.2290\n1  32  0.1000"),  # pandas widths
    ("loss 2.5e-05", "loss 2.5000001e-05"),
    ("1,682 films", "1,682 films"),
    ("share 12.3%", "share 12.3%"),
])
def test_rounding_differences_pass(ref, now):
    assert outputs_differ(ref, now) is None


@pytest.mark.parametrize("ref, now, why", [
    ("collision rate 0.4269", "collision rate 0.4358", "number differs"),  # a flipped k-means assignment
    ("943 users", "942 users", "number differs"),  # integers are decisions: exact
    ("best epoch 12", "best epoch 13", "number differs"),
    ("NDCG@10 0.0813", "NDCG@10 0.0830", "number differs"),  # 2%: another seed's size of change
    ("top film: Star Wars (1977)", "top film: Fargo (1996)", "text differs"),
    ("sizes [52, 53]", "sizes [52, 53, 51]", "number of values"),
    ("nan", "0.5", "number of values"),
])
def test_real_changes_fail(ref, now, why):
    assert why in outputs_differ(ref, now)


def test_a_wider_tolerance_is_stated_in_the_cell_with_a_reason():
    assert cell_rtol("x = 1\nprint(x)") == DEFAULT_RTOL
    assert cell_rtol("fit(model)  # nbval-rtol: 0.02 -- eight epochs of float32 training") == 0.02
    assert outputs_differ("NDCG@10 0.0813", "NDCG@10 0.0825", rtol=0.02) is None
    with pytest.raises(ValueError, match="malformed"):
        cell_rtol("# nbval-rtol: 0.02")  # no reason
    with pytest.raises(ValueError, match="outside"):
        cell_rtol(f"# nbval-rtol: {MAX_RTOL * 2} -- too loose to catch anything")


# ----------------------------------------------------------------- real computations: what varies, what fails
def _sid_report(vectors: np.ndarray, *, seed: int = 0, codes: int = 16, threads: int = 1) -> str:
    """A chapter-04-like table (entropy-free: sizes, collisions, error) of one SID fit, printed as pandas does."""
    torch.set_num_threads(threads)
    sids = fit_semantic_ids(vectors, SIDConfig(levels=2, codes=codes, seed=seed, method="balanced"))
    x = sids.quantizer.prepare(vectors).numpy()
    err = float(((x - sids.quantizer.decode(sids.codes[:, :2])) ** 2).sum(1).mean())
    rows = [{"K": codes, "collisions": collision_rates(sids.codes[:, :2])[-1], "mse": err,
             "largest": int(np.bincount(sids.codes[:, 0]).max())}]
    return pd.DataFrame(rows).round(4).to_string()


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 24))
    return (centres[rng.integers(0, 40, 1500)] + 0.6 * rng.standard_normal((1500, 24))).astype(np.float32)


def test_another_thread_count_or_rounded_input_validates(vectors):
    """What differs between readers' machines (threads, the last bit of a float32 input) passes."""
    ref = _sid_report(vectors)
    assert outputs_differ(ref, _sid_report(vectors, threads=2)) is None
    nudged = (vectors * np.float32(1 + 2**-23)).astype(np.float32)  # one ulp: another CPU's encoder output
    assert outputs_differ(ref, _sid_report(nudged)) is None


@pytest.mark.parametrize("change", [{"seed": 1}, {"codes": 12}])
def test_another_seed_or_k_fails(vectors, change):
    assert outputs_differ(_sid_report(vectors), _sid_report(vectors, **change)) is not None


def test_a_broken_loss_fails():
    """Training with a sign-flipped loss (a classic bug) prints a different loss curve and fails validation."""
    from cobra.losses import full_softmax_loss

    def curve(sign: float) -> str:
        torch.manual_seed(0)
        emb = torch.nn.Embedding(50, 8)
        opt = torch.optim.SGD(emb.parameters(), lr=0.5)
        q, target = torch.randn(64, 8), torch.randint(0, 49, (64,))
        out = []
        for _ in range(5):
            loss = full_softmax_loss(q, target + 1, emb.weight, temperature=1.0)
            opt.zero_grad()
            (sign * loss).backward()
            opt.step()
            out.append(f"{loss.item():.4f}")
        return "loss " + " ".join(out)

    assert outputs_differ(curve(1.0), curve(1.0)) is None
    assert "number differs" in outputs_differ(curve(1.0), curve(-1.0))
