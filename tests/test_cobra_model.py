"""COBRA model: config, SID vocabulary, causality over the interleaved sequence, losses, overfitting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cobra.cobra_model import SID_LOSSES, CobraConfig, CobraRecommender
from cobra.config import ConfigError
from cobra.data import Batch
from cobra.losses import sampled_softmax_loss

N, DT = 24, 10


pytestmark = pytest.mark.usefixtures("one_thread")


def _codes(seed: int = 0) -> torch.Tensor:
    """(N, 3) codes: 2 levels of 3 codes plus a uniqueness column."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 3, (N, 2), generator=g)
    uniq = torch.zeros(N, 1, dtype=torch.int64)
    seen: dict[tuple[int, int], int] = {}
    for i, row in enumerate(base.tolist()):
        uniq[i, 0] = seen.get(tuple(row), 0)
        seen[tuple(row)] = int(uniq[i, 0]) + 1
    return torch.cat([base, uniq], dim=1)


def _model(seed: int = 0, **changes) -> CobraRecommender:
    torch.manual_seed(seed)
    text = F.normalize(torch.randn(N, DT, generator=torch.Generator().manual_seed(seed + 1)), dim=-1)
    config = CobraConfig(num_items=N, dim=16, num_blocks=2, num_heads=2, max_seq_len=8, dropout=0.0,
                         num_negatives=8, **changes)
    return CobraRecommender(config, _codes(seed), text)


def _batch(B: int = 4, T: int = 8, lengths=(8, 5, 1, 3), seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths[:B], dtype=torch.int64)
    pad = torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)
    ids = torch.randint(1, N + 1, (B, T), generator=g).masked_fill(pad, 0)
    ts = (1_000_000 + torch.cumsum(torch.randint(0, 90_000, (B, T), generator=g), 1)).masked_fill(pad, 0)
    nxt = torch.randint(1, N + 1, (B, T), generator=g).masked_fill(pad, 0)
    nxt[:, :-1] = torch.where(pad[:, 1:], nxt[:, :-1], ids[:, 1:])  # next_ids[t] = ids[t + 1] inside a row
    return Batch(ids=ids, timestamps=ts, lengths=lengths, users=torch.arange(1, B + 1), next_ids=nxt)


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="vid_negatives"):
        CobraConfig(num_items=5, vid_negatives="all")
    with pytest.raises(ConfigError, match="sid_loss"):
        CobraConfig(num_items=5, sid_loss="ce")
    with pytest.raises(ConfigError, match="decode mode"):
        CobraConfig(num_items=5, decode={"mode": "greedy"})
    assert CobraConfig(num_items=5, decode={"mode": "beam"}).decode.mode == "beam"
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        CobraConfig(num_items=5, temperature=0.0)
    with pytest.raises(ConfigError, match="num_negatives must be >= 1"):
        CobraConfig(num_items=5, num_negatives=0)
    # The shared backbone fields reach COBRA's HSTU too (attention_dim was not settable for COBRA before).
    assert _model(attention_dim=4).backbone.blocks[0].attention_dim == 4
    with pytest.raises(ValueError, match="num_items"):
        CobraRecommender(CobraConfig(num_items=N + 1), _codes(), torch.zeros(N + 1, DT))


def test_vocabulary_and_item_vectors():
    model = _model()
    assert model.vocab_codes.shape[0] == N  # the uniqueness column makes every SID an item
    assert model.item_sid_vectors().shape == (N + 1, 16) and (model.item_sid_vectors()[0] == 0).all()
    assert model.item_vid_vectors().shape == (N + 1, 16) and (model.item_vid_vectors()[0] == 0).all()
    coarse = _model(sid_levels=2)
    codes = _codes()
    assert coarse.vocab_codes.shape[0] == len({tuple(r) for r in codes[:, :2].tolist()})
    # every item maps to the vocabulary entry of its code tuple, whose representative has the same SID vector
    assert torch.equal(coarse.vocab_codes[coarse.item_sid[1:]], codes[:, :2])
    sid = coarse.item_sid_vectors()
    assert torch.allclose(coarse.sid_vocab_vectors()[coarse.item_sid[1:]], sid[1:])
    with_id = _model(vid_id_embedding=True)
    assert with_id.vid_tower.ids is not None


def _moved(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() > 1e-4)


def test_causal_over_the_interleaved_sequence():
    model = _model().eval()
    g = torch.Generator().manual_seed(3)
    B, T, D = 2, 5, 16
    sid, vid = torch.randn(B, T, D, generator=g), torch.randn(B, T, D, generator=g)
    ts = 1000 + torch.cumsum(torch.randint(1, 5000, (B, T), generator=g), 1)
    lengths = torch.tensor([5, 5])
    base, _ = model.encode_tokens(sid, vid, ts, lengths)  # (B, 2T, D)
    for t in range(T):
        s2 = sid.clone()
        s2[:, t] = torch.randn(B, D, generator=g)  # a new vector (a constant shift would vanish in LayerNorm)
        out, _ = model.encode_tokens(s2, vid, ts, lengths)
        assert torch.allclose(out[:, : 2 * t], base[:, : 2 * t], atol=1e-6)  # the past ignores SID_t
        assert _moved(out[:, 2 * t], base[:, 2 * t])  # SID_t sees itself
        v2 = vid.clone()
        v2[:, t] = torch.randn(B, D, generator=g)
        out, _ = model.encode_tokens(sid, v2, ts, lengths)
        assert torch.allclose(out[:, : 2 * t + 1], base[:, : 2 * t + 1], atol=1e-6)  # SID_t does not see VID_t
        assert _moved(out[:, 2 * t + 1], base[:, 2 * t + 1])  # VID_t sees itself
        if t + 1 < T:
            assert _moved(out[:, 2 * t + 2], base[:, 2 * t + 2])  # SID_{t+1} sees VID_t
        # a timestamp is used as key time from its own pair on and as query time of the VID just before it
        t2 = ts.clone()
        t2[:, t] += 10_000_000
        out, _ = model.encode_tokens(sid, vid, t2, lengths)
        keep = max(2 * t - 1, 0)
        assert torch.allclose(out[:, :keep], base[:, :keep], atol=1e-6)


def test_training_loss_backward_reaches_every_tower():
    for negatives in ("in-batch", "catalogue", "cache"):
        for sid_loss in SID_LOSSES:
            model = _model(vid_negatives=negatives, sid_loss=sid_loss, vid_id_embedding=True).train()
            loss, stats = model.training_loss(_batch())
            assert loss.dim() == 0 and torch.isfinite(loss)
            assert set(stats) == {"loss_sid", "loss_vid"}
            assert loss.item() == pytest.approx(stats["loss_sid"] + stats["loss_vid"], rel=1e-5)
            loss.backward()
            assert model.sid_tower.table.weight.grad.abs().sum() > 0
            assert model.vid_tower.proj.weight.grad.abs().sum() > 0
            assert model.interleaver.type_embedding.weight.grad.abs().sum() > 0
            if negatives == "cache":
                assert len(model.cache) > 0  # pushed after the loss


def test_lambda_weights_the_vid_loss():
    batch = _batch()
    a_loss, a = _model(lambda_vid=1.0).training_loss(batch, torch.Generator().manual_seed(0))
    b_loss, b = _model(lambda_vid=0.25).training_loss(batch, torch.Generator().manual_seed(0))
    assert a["loss_vid"] == pytest.approx(b["loss_vid"], rel=1e-5)
    assert b_loss.item() == pytest.approx(b["loss_sid"] + 0.25 * b["loss_vid"], rel=1e-5)


def test_fast_sid_sampled_softmax_equals_the_generic_loss():
    model = _model()
    query = torch.randn(11, 16, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(1, N + 1, (11,), generator=torch.Generator().manual_seed(1))
    fast = SID_LOSSES["sampled-softmax"](model, query, targets, torch.Generator().manual_seed(5))
    vocab = model.sid_vocab_vectors()
    table = torch.cat([vocab.new_zeros(1, 16), vocab])
    slow = sampled_softmax_loss(query, model.item_sid[targets] + 1, table, 8, 0.05, torch.Generator().manual_seed(5))
    assert torch.allclose(fast, slow, atol=1e-5)


def test_long_batches_keep_the_last_events():
    model = _model().eval()
    wide = _batch(B=2, T=12, lengths=(12, 4), seed=4)  # max_seq_len is 8 items
    loss_wide, _ = model.training_loss(wide, torch.Generator().manual_seed(0))
    cut = Batch(ids=torch.zeros(2, 8, dtype=torch.int64), timestamps=torch.zeros(2, 8, dtype=torch.int64),
                lengths=torch.tensor([8, 4]), users=wide.users, next_ids=torch.zeros(2, 8, dtype=torch.int64))
    cut.ids[0], cut.timestamps[0], cut.next_ids[0] = wide.ids[0, 4:], wide.timestamps[0, 4:], wide.next_ids[0, 4:]
    cut.ids[1, :4], cut.timestamps[1, :4], cut.next_ids[1, :4] = (wide.ids[1, :4], wide.timestamps[1, :4],
                                                                  wide.next_ids[1, :4])
    loss_cut, _ = model.training_loss(cut, torch.Generator().manual_seed(0))
    assert torch.allclose(loss_wide, loss_cut, atol=1e-6)
    assert torch.allclose(model.score(wide), model.score(cut), atol=1e-5)


def test_score_shape_and_padding_column():
    model = _model().eval()
    batch = _batch()
    scores = model.score(batch)
    assert scores.shape == (4, N + 1) and scores.dtype == torch.float32
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert not torch.is_grad_enabled() or scores.grad_fn is None


@pytest.mark.parametrize("sid_loss", list(SID_LOSSES))
def test_overfits_one_batch(sid_loss):
    model = _model(seed=1, sid_loss=sid_loss, vid_negatives="catalogue").train()
    batch = _batch(B=3, lengths=(8, 6, 4), seed=7)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(80):
        loss, stats = model.training_loss(batch, torch.Generator().manual_seed(step))
        first = first or stats
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["loss_sid"] < 0.5 * first["loss_sid"]
    assert stats["loss_vid"] < 0.5 * first["loss_vid"]
