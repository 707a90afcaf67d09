"""Losses: sampled softmax against a brute-force computation, accidental hits, full softmax."""

from __future__ import annotations

import math

import pytest
import torch

from cobra.embeddings import ItemIdEmbedding
from cobra.losses import (
    ACCIDENTAL_HIT_LOGIT,
    LOSSES,
    full_softmax_loss,
    sample_negatives,
    sampled_softmax_loss,
    valid_positions,
)

M, D, N, R = 5, 8, 20, 6


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(M, D, generator=g, dtype=torch.float64)
    table = torch.randn(N + 1, D, generator=g, dtype=torch.float64)
    positives = torch.randint(1, N + 1, (M,), generator=g)
    negatives = torch.randint(1, N + 1, (M, R), generator=g)
    return query, table, positives, negatives


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def _brute_force(query, table, positives, negatives, temperature: float) -> float:
    """Per row: -log(exp(s+) / (exp(s+) + sum over negatives != positive of exp(s-)))."""
    total = 0.0
    for m in range(len(query)):
        pos = _cos(query[m], table[positives[m]]) / temperature
        logits = [pos]
        for n in negatives[m].tolist():
            logits.append(ACCIDENTAL_HIT_LOGIT if n == int(positives[m]) else _cos(query[m], table[n]) / temperature)
        top = max(logits)
        total += -(pos - top - math.log(sum(math.exp(x - top) for x in logits)))
    return total / len(query)


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_sampled_softmax_equals_brute_force(temperature: float) -> None:
    query, table, positives, negatives = _data()
    negatives[0, :2] = positives[0]  # make sure some accidental hits are in there
    loss = sampled_softmax_loss(query, positives, table, temperature=temperature, negatives=negatives)
    expected = _brute_force(query, table, positives, negatives, temperature)
    assert loss.dtype == torch.float32
    assert math.isclose(float(loss), expected, rel_tol=1e-5, abs_tol=1e-6)


def test_accidental_hits_are_masked() -> None:
    query, table, positives, _ = _data()
    only_hits = positives.unsqueeze(1).expand(M, R)
    loss = sampled_softmax_loss(query, positives, table, negatives=only_hits)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)  # the positive is the only real candidate
    # a hit contributes nothing: same loss as with that negative removed
    _, _, _, negatives = _data()
    with_hit = torch.cat([negatives, positives.unsqueeze(1)], dim=1)
    a = sampled_softmax_loss(query, positives, table, negatives=with_hit)
    b = sampled_softmax_loss(query, positives, table, negatives=negatives)
    assert torch.allclose(a, b, atol=1e-6)


def test_table_and_embedding_function_agree_and_scale_is_ignored() -> None:
    torch.manual_seed(0)
    emb = ItemIdEmbedding(N, D)
    query = torch.randn(M, D)
    positives = torch.randint(1, N + 1, (M,))
    negatives = sample_negatives(M, R, N, torch.Generator().manual_seed(3))
    a = sampled_softmax_loss(query, positives, emb, negatives=negatives, num_items=N)
    b = sampled_softmax_loss(query * 7.0, positives, emb.all_items(), negatives=negatives)  # L2-normalised
    assert torch.allclose(a, b, atol=1e-5)
    a.backward()
    assert emb.table.weight.grad is not None


def _gathered_reference(query, positives, items, negatives, temperature: float = 0.05) -> torch.Tensor:
    """The straightforward implementation: normalise the (M, R, D) gathered negatives."""
    lookup = (lambda ids: items[ids]) if isinstance(items, torch.Tensor) else items
    q = torch.nn.functional.normalize(query.float(), dim=-1)
    pos = torch.nn.functional.normalize(lookup(positives).float(), dim=-1)  # (M, D)
    neg = torch.nn.functional.normalize(lookup(negatives).float(), dim=-1)  # (M, R, D)
    neg_logits = torch.einsum("md,mrd->mr", q, neg) / temperature
    neg_logits = neg_logits.masked_fill(negatives == positives.unsqueeze(1), ACCIDENTAL_HIT_LOGIT)
    logits = torch.cat([(q * pos).sum(-1, keepdim=True) / temperature, neg_logits], dim=1)
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


@pytest.mark.parametrize("gemm", [True, False])
@pytest.mark.parametrize("as_function", [False, True])
def test_unique_rows_fast_path_equals_gathered_reference(as_function: bool, gemm: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Normalising each distinct item once gives the values and gradients of normalising every gathered row,
    through the (M, U) product (small catalogues) and through the gather."""
    import cobra.losses

    monkeypatch.setattr(cobra.losses, "GEMM_ROWS_PER_NEGATIVE", 16 if gemm else 0)
    torch.manual_seed(0)
    emb = ItemIdEmbedding(N, D)
    query = torch.randn(40, D, requires_grad=True)
    positives = torch.randint(1, N + 1, (40,))
    negatives = sample_negatives(40, 16, N, torch.Generator().manual_seed(1))  # many repeated rows
    negatives[0, :3] = positives[0]
    def items():
        return emb if as_function else emb.all_items()

    fast = sampled_softmax_loss(query, positives, items(), negatives=negatives, num_items=N)
    grads_fast = torch.autograd.grad(fast, [query, emb.table.weight])
    slow = _gathered_reference(query, positives, items(), negatives)
    grads_slow = torch.autograd.grad(slow, [query, emb.table.weight])
    assert torch.allclose(fast, slow, rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_fast, grads_slow, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_negative_sampling_is_uniform_over_items_and_seeded() -> None:
    neg = sample_negatives(100, 128, N, torch.Generator().manual_seed(0))
    assert neg.shape == (100, 128) and neg.dtype == torch.int64
    assert neg.min() >= 1 and neg.max() <= N and len(neg.unique()) == N  # never padding, every item
    assert torch.equal(neg, sample_negatives(100, 128, N, torch.Generator().manual_seed(0)))
    query, table, positives, _ = _data()
    a = sampled_softmax_loss(query, positives, table, generator=torch.Generator().manual_seed(5))
    b = sampled_softmax_loss(query, positives, table, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_full_softmax_equals_brute_force() -> None:
    query, table, positives, _ = _data()
    everything = torch.arange(1, N + 1).expand(M, N)
    full = full_softmax_loss(query, positives, table, temperature=0.1)
    # full softmax = sampled softmax whose negatives are all other items
    others = torch.stack([everything[m][everything[m] != positives[m]] for m in range(M)])
    expected = _brute_force(query, table, positives, others, 0.1)
    assert math.isclose(float(full), expected, rel_tol=1e-5)


def test_valid_positions_and_refusals() -> None:
    hidden = torch.randn(2, 3, D)
    next_ids = torch.tensor([[4, 5, 0], [6, 0, 0]])
    query, positives = valid_positions(hidden, next_ids)
    assert query.shape == (3, D) and positives.tolist() == [4, 5, 6]
    assert torch.equal(query[2], hidden[1, 0])
    _, table, _, _ = _data()
    with pytest.raises(ValueError, match="valid positions"):
        sampled_softmax_loss(hidden.reshape(6, D), next_ids.reshape(6), table)
    with pytest.raises(ValueError, match="num_items"):
        full_softmax_loss(query, positives, lambda ids: table[ids])
    empty = sampled_softmax_loss(torch.zeros(0, D, requires_grad=True), torch.zeros(0, dtype=torch.int64), table)
    assert float(empty.detach()) == 0.0


def test_registry_entries_share_a_signature() -> None:
    query, table, positives, _ = _data()
    for name, fn in LOSSES.items():
        loss = fn(query, positives, table, num_negatives=8, temperature=0.05,
                  generator=torch.Generator().manual_seed(0), num_items=N)
        assert loss.shape == () and torch.isfinite(loss), name
