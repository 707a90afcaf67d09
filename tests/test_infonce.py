"""InfoNCE against a brute-force per-row computation for each negative source; VidCache; code cross entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cobra.losses import VidCache, code_ce_loss, info_nce_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))


def _row_loss(q: torch.Tensor, pos_vec: torch.Tensor, negs: list[torch.Tensor], t: float) -> float:
    """-log(exp(s+/t) / (exp(s+/t) + sum exp(s_n/t))) written out plainly."""
    pos = math.exp(_cos(q, pos_vec) / t)
    return -math.log(pos / (pos + sum(math.exp(_cos(q, n) / t) for n in negs)))


def _setup(seed: int = 0, M: int = 7, N: int = 9, D: int = 5):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(N + 1, D, generator=g, dtype=torch.float64)
    table[0] = 0
    query = torch.randn(M, D, generator=g, dtype=torch.float64)
    positives = torch.tensor([3, 5, 3, 1, 9, 5, 3])[:M]  # duplicates on purpose
    return table, query, positives


def test_catalogue_matches_brute_force():
    table, query, positives = _setup()
    t = 0.3
    loss = info_nce_loss(query, positives, table, "catalogue", temperature=t)
    expected = sum(
        _row_loss(query[m], table[p], [table[i] for i in range(1, table.shape[0]) if i != p], t)
        for m, p in enumerate(positives.tolist())
    ) / len(positives)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_catalogue_accepts_a_function():
    table, query, positives = _setup()
    a = info_nce_loss(query, positives, table, "catalogue", temperature=0.2)
    b = info_nce_loss(query, positives, lambda ids: table[ids], "catalogue", temperature=0.2, num_items=9)
    assert torch.allclose(a, b)


def test_in_batch_default_pool_masks_duplicates():
    table, query, positives = _setup()
    t = 0.5
    loss = info_nce_loss(query, positives, table, "in-batch", temperature=t)
    rows = []
    for m, p in enumerate(positives.tolist()):
        # negatives: every other position's positive whose item differs from this row's positive
        negs = [table[q] for q in positives.tolist() if q != p]
        rows.append(_row_loss(query[m], table[p], negs, t))
    assert float(loss) == pytest.approx(sum(rows) / len(rows), rel=1e-5)


def test_in_batch_pool_with_sid_vectors_masked():
    table, query, positives = _setup()
    g = torch.Generator().manual_seed(1)
    sid_vectors = torch.randn(4, table.shape[1], generator=g, dtype=torch.float64)
    sid_ids = torch.tensor([2, 4, 6, 3])  # SID-space vectors of some items, one even equal to a positive
    pool_ids = torch.cat([positives, sid_ids])
    pool_vectors = torch.cat([table[positives], sid_vectors])
    pool_is_sid = torch.cat([torch.zeros(len(positives), dtype=torch.bool), torch.ones(4, dtype=torch.bool)])
    t = 0.5
    masked = info_nce_loss(query, positives, table, "in-batch", temperature=t, pool_ids=pool_ids,
                           pool_vectors=pool_vectors, pool_is_sid=pool_is_sid)
    plain = info_nce_loss(query, positives, table, "in-batch", temperature=t)
    assert torch.allclose(masked, plain)  # the SID vectors change nothing once masked
    unmasked = info_nce_loss(query, positives, table, "in-batch", temperature=t, pool_ids=pool_ids,
                             pool_vectors=pool_vectors)
    rows = []
    for m, p in enumerate(positives.tolist()):
        negs = [v for i, v in zip(pool_ids.tolist(), pool_vectors, strict=True) if i != p]
        rows.append(_row_loss(query[m], table[p], negs, t))
    assert float(unmasked) == pytest.approx(sum(rows) / len(rows), rel=1e-5)
    assert not torch.allclose(unmasked, plain)


def test_in_batch_gradient_reaches_the_negatives():
    table, query, positives = _setup()
    table = table.clone().requires_grad_(True)
    info_nce_loss(query, positives, table, "in-batch").backward()
    assert table.grad[positives].abs().sum() > 0


def test_cache_matches_brute_force():
    table, query, positives = _setup()
    cache = VidCache(size=6, dim=table.shape[1])
    cached_ids = torch.tensor([2, 3, 8, 5, 7])
    g = torch.Generator().manual_seed(2)
    cached_vectors = torch.randn(5, table.shape[1], generator=g)
    cache.push(cached_ids, cached_vectors)
    t = 0.4
    loss = info_nce_loss(query.float(), positives, table.float(), "cache", temperature=t, cache=cache)
    rows = []
    for m, p in enumerate(positives.tolist()):
        negs = [v for i, v in zip(cached_ids.tolist(), cached_vectors, strict=True) if i != p]
        rows.append(_row_loss(query[m].float(), table[p].float(), negs, t))
    assert float(loss) == pytest.approx(sum(rows) / len(rows), rel=1e-4)


def test_empty_cache_gives_zero_loss_and_errors():
    table, query, positives = _setup()
    loss = info_nce_loss(query, positives, table, "cache", cache=VidCache(4, table.shape[1]))
    assert float(loss) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="VidCache"):
        info_nce_loss(query, positives, table, "cache")
    with pytest.raises(ValueError, match="unknown VID negatives"):
        info_nce_loss(query, positives, table, "everything")
    with pytest.raises(ValueError, match="padding"):
        info_nce_loss(query, torch.zeros_like(positives), table)
    empty = info_nce_loss(query[:0], positives[:0], table, "in-batch")
    assert float(empty) == 0.0


def test_vid_cache_is_fifo():
    cache = VidCache(size=5, dim=2)
    assert len(cache) == 0
    cache.push(torch.tensor([1, 2, 3]), torch.arange(6.0).view(3, 2))
    ids, vecs = cache.entries()
    assert ids.tolist() == [1, 2, 3] and vecs[:, 0].tolist() == [0.0, 2.0, 4.0]
    cache.push(torch.tensor([4, 5, 6, 7]), 10 + torch.arange(8.0).view(4, 2))
    ids, vecs = cache.entries()
    assert ids.tolist() == [3, 4, 5, 6, 7]  # 1 and 2, the oldest, were overwritten
    assert vecs[:, 0].tolist() == [4.0, 10.0, 12.0, 14.0, 16.0]
    cache.push(torch.arange(20, 28), torch.zeros(8, 2))  # more than the size: only the newest 5 stay
    assert cache.entries()[0].tolist() == [23, 24, 25, 26, 27]
    assert len(cache) == 5
    v = torch.ones(1, 2, requires_grad=True)
    cache.push(torch.tensor([9]), v * 2)
    assert not cache.entries()[1].requires_grad  # stored detached
    state = cache.state_dict()
    assert set(state) == {"vectors", "ids", "pointer"}
    cache.clear()
    assert len(cache) == 0


def test_code_ce_is_the_sum_of_level_cross_entropies():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)]
    codes = torch.tensor([[0, 1], [3, 2], [1, 0], [2, 2], [0, 0], [3, 1]])
    expected = 0.0
    for level, lg in enumerate(logits):
        expected += sum(-float(torch.log_softmax(lg[m], 0)[codes[m, level]]) for m in range(6)) / 6
    assert float(code_ce_loss(logits, codes)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="heads"):
        code_ce_loss(logits[:1], codes)
