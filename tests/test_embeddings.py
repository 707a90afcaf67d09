"""Item embeddings: ID table, PrefixN / n-gram / RQ-sum tables, fusions, the factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cobra.embeddings import (
    FUSIONS,
    SID_EMBEDDINGS,
    FusedItemEmbedding,
    ItemIdEmbedding,
    NgramEmbedding,
    PrefixNEmbedding,
    RQSumEmbedding,
    build_item_embedding,
    tuple_hash,
)
from cobra.models import ModelConfig, SequentialRecommender

# items 1..6; items 1, 2, 3 share c1 = 0; items 1, 2 share (0, 1); item 4 repeats item 1's last code
CODES = torch.tensor(
    [
        [0, 1, 2],
        [0, 1, 3],
        [0, 2, 2],
        [1, 1, 2],
        [1, 0, 0],
        [3, 3, 3],
    ]
)
N, D = 6, 8


def test_tuple_hash_is_fixed_and_in_range() -> None:
    # pinned values: changing the hash silently would change every trained PrefixN table
    assert tuple_hash([1, torch.tensor([0, 1, 2])], 1000).tolist() == [8, 9, 10]
    assert tuple_hash([2, torch.tensor([5]), torch.tensor([7])], 2**16).tolist() == [27562]

    def reference(parts: list[int], size: int) -> int:  # plain Python, arbitrary precision
        h = 0
        for x in parts:
            h = (h * 1_000_003 + x + 1) % (2**31 - 1)
        return h % size + 1

    codes = torch.randint(0, 2**20, (200, 4))
    rows = tuple_hash([4, *codes.unbind(1)], 2**16)
    assert rows.tolist() == [reference([4, *c], 2**16) for c in codes.tolist()]
    rows = tuple_hash([3, *torch.randint(0, 128, (3, 500)).unbind(0)], 97)
    assert rows.min() >= 1 and rows.max() <= 97


def test_id_table() -> None:
    emb = ItemIdEmbedding(N, D)
    assert emb(torch.tensor([[1, 2, 0]])).shape == (1, 3, D)
    assert torch.all(emb(torch.tensor([0])) == 0)
    assert emb.all_items().shape == (N + 1, D)


@pytest.mark.parametrize("kind", sorted(SID_EMBEDDINGS))
def test_sid_tables_shapes_and_padding(kind: str) -> None:
    emb = build_item_embedding(kind, N, D, CODES)
    out = emb(torch.tensor([[1, 2, 0], [6, 5, 4]]))
    assert out.shape == (2, 3, D)
    assert torch.all(out[0, 2] == 0)
    assert emb.all_items().shape == (N + 1, D)
    assert emb.codes.shape == (N + 1, 3) and emb.codes[0].tolist() == [-1, -1, -1]
    assert "codes" in emb.state_dict() and "rows" in emb.state_dict()


def test_prefixn_shares_rows_for_shared_prefixes() -> None:
    emb = PrefixNEmbedding(CODES, D, table_size=1024)
    rows = emb.rows  # (N+1, 3)
    assert rows.shape == (N + 1, 3) and rows[0].tolist() == [0, 0, 0]
    assert rows[1, 0] == rows[2, 0] == rows[3, 0] != rows[4, 0]  # (c1)
    assert rows[1, 1] == rows[2, 1] != rows[3, 1]  # (c1, c2)
    assert rows[1, 2] != rows[2, 2]  # full prefixes differ
    assert rows[1, 2] != rows[4, 2]  # same last code, different path: different row
    # the embedding is the sum of its prefix rows, so items 1 and 2 differ only by the last one
    table = emb.table.weight
    diff = emb(torch.tensor(1)) - emb(torch.tensor(2))
    assert torch.allclose(diff, table[rows[1, 2]] - table[rows[2, 2]])
    # a gradient through item 1 reaches the (c1) row item 3 uses
    emb(torch.tensor(1)).sum().backward()
    assert emb.table.weight.grad[rows[3, 0]].abs().sum() > 0
    assert emb.table.weight.grad[rows[3, 2]].abs().sum() == 0


def test_prefixn_levels_and_collisions() -> None:
    emb = PrefixNEmbedding(CODES, D, table_size=1024, levels=2)
    assert emb.rows.shape == (N + 1, 2)
    stats = PrefixNEmbedding(CODES, D, table_size=1024).collisions()
    assert [s["keys"] for s in stats] == [3, 5, 6]
    assert all(s["collided_keys"] == 0 for s in stats)
    tiny = PrefixNEmbedding(CODES, D, table_size=3).collisions()  # 14 keys in 3 rows must collide
    assert sum(s["collided_keys"] for s in tiny) == 14
    assert all(s["rows"] <= 3 for s in tiny)


def test_ngram_and_rqsum_rows() -> None:
    ngram = NgramEmbedding(CODES, D, table_size=4096, ngram_sizes=(1, 2, 3))
    assert ngram.rows.shape == (N + 1, 3 + 2 + 1)
    # unigram at level 3 of items 1 and 4 (code 2) is shared; bigram (c2, c3) = (1, 2) too
    assert ngram.rows[1, 2] == ngram.rows[4, 2]
    assert ngram.rows[1, 4] == ngram.rows[4, 4]
    # equal codes at different levels are different keys
    assert ngram.rows[6, 0] != ngram.rows[6, 1]
    rq = RQSumEmbedding(CODES, D)
    sizes = [4, 4, 4]  # max code + 1 per level
    assert rq.num_rows == sum(sizes)
    assert rq.rows[1].tolist() == [0 + 1, 4 + 1 + 1, 8 + 2 + 1]
    with pytest.raises(ValueError, match="ngram_sizes"):
        NgramEmbedding(CODES, D, ngram_sizes=(4,))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_fusions(fusion: str) -> None:
    torch.manual_seed(0)
    emb = build_item_embedding("prefixN", N, D, CODES.numpy(), fusion=fusion)
    assert isinstance(emb, FusedItemEmbedding)
    out = emb(torch.tensor([[1, 0], [3, 6]]))
    assert out.shape == (2, 2, D)
    assert torch.all(out[0, 1] == 0)
    out.sum().backward()
    assert emb.id_table.table.weight.grad is not None and emb.sid_table.table.weight.grad is not None


def test_sum_and_scalar_weight_start_equal() -> None:
    torch.manual_seed(0)
    a = build_item_embedding("rqsum", N, D, CODES, fusion="sum")
    torch.manual_seed(0)
    b = build_item_embedding("rqsum", N, D, CODES, fusion="scalar_weight")
    ids = torch.arange(N + 1)
    assert torch.allclose(a(ids), b(ids))
    assert torch.allclose(a(ids), a.id_table(ids) + a.sid_table(ids))


def test_factory_errors() -> None:
    with pytest.raises(ValueError, match="unknown embedding kind"):
        build_item_embedding("prefix", N, D, CODES)
    with pytest.raises(ValueError, match="needs codes"):
        build_item_embedding("prefixN", N, D)
    with pytest.raises(ValueError, match="num_items"):
        build_item_embedding("prefixN", N + 1, D, CODES)
    with pytest.raises(ValueError, match="nothing to fuse"):
        build_item_embedding("id", N, D, fusion="sum")
    with pytest.raises(ValueError, match="unknown fusion"):
        build_item_embedding("ngram", N, D, CODES, fusion="concat")
    with pytest.raises(ValueError, match="integer array"):
        build_item_embedding("rqsum", N, D, CODES.float())
    with pytest.raises(ValueError, match="non-negative"):
        build_item_embedding("rqsum", N, D, -CODES - 1)


def test_model_with_sid_embedding() -> None:
    codes = np.random.default_rng(0).integers(0, 4, size=(20, 3))
    config = ModelConfig(num_items=20, embedding="prefixN", fusion="vector_gate", dim=8, max_seq_len=5,
                         sid_table_size=256)
    model = SequentialRecommender(config, codes)
    assert model.item_vectors().shape == (21, 8)
    with pytest.raises(ValueError, match="needs codes"):
        SequentialRecommender(config)
