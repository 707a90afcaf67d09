"""TIGER on HSTU: loss, teacher forcing = decoding, exact beam search, real recommendations, scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cobra.config import ConfigError
from cobra.data import Batch
from cobra.sid import add_uniqueness
from cobra.tiger import TigerConfig, TigerRecommender, last_events

N = 30


pytestmark = pytest.mark.usefixtures("one_thread")


def _codes(n: int = N, seed: int = 0) -> np.ndarray:
    return add_uniqueness(np.random.default_rng(seed).integers(0, 4, size=(n, 2)))  # (n, 3)


def _model(**kw) -> TigerRecommender:
    torch.manual_seed(0)
    args = dict(num_items=N, dim=16, num_blocks=2, num_heads=2, max_seq_len=8, dropout=0.0, beam_width=5)
    args.update(kw)
    return TigerRecommender(TigerConfig(**args), _codes(args["num_items"])).eval()


def _batch(lengths=(8, 5, 1, 3), T: int = 8, seed: int = 0, num_items: int = N) -> Batch:
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    lengths = torch.tensor(lengths)
    seq = torch.stack([torch.randperm(num_items, generator=g)[: T + 1] + 1 for _ in range(B)])  # distinct items
    keep = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    ids = seq[:, :T] * keep
    nxt = torch.where(keep, seq[:, 1:], torch.zeros_like(ids))
    at_last = torch.arange(T).unsqueeze(0) == (lengths - 1).unsqueeze(1)  # (B, T)
    nxt = torch.where(at_last, seq.gather(1, lengths.view(-1, 1)), nxt)
    ts = torch.cumsum(torch.randint(1, 10_000, (B, T), generator=g), 1) * keep
    return Batch(ids=ids, timestamps=ts, lengths=lengths, users=torch.arange(1, B + 1), next_ids=nxt * keep,
                 targets=None)


def test_training_loss_backward() -> None:
    model = _model().train()
    loss, stats = model.training_loss(_batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"loss", "ce@1", "ce@2", "ce@3", "acc@1", "positions"} <= set(stats)
    assert stats["positions"] == 8 + 5 + 1 + 3
    assert stats["loss"] == pytest.approx(stats["ce@1"] + stats["ce@2"] + stats["ce@3"], rel=1e-5)
    loss.backward()
    for name in ("code_emb.weight", "heads.0.weight", "heads.2.weight", "backbone.blocks.0.uvqk.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_teacher_forcing_matches_decoding_steps() -> None:
    """The logits of the parallel training layout equal those of the beam-search steps."""
    model, batch = _model(), _batch()
    S = model.depth
    logits = model.level_logits(batch.ids, batch.timestamps, batch.lengths, batch.next_ids)
    last = batch.lengths - 1
    rows = torch.arange(len(batch))
    target = model.trie.codes[batch.next_ids[rows, last]]  # (B, S)
    step = model.step_function(batch.ids, batch.timestamps, batch.lengths)
    for level in range(S):
        got = step(level, target[:, None, :level])[:, 0]  # (B, V)
        want = logits[level][rows, last]  # (B, V)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # and inner positions do not see the future: changing later items leaves position 2 unchanged
    other = _batch(seed=1)
    ids = batch.ids.clone()
    ids[0, 3:] = other.ids[0, 3:]
    again = model.level_logits(ids, batch.timestamps, batch.lengths, batch.next_ids)
    for level in range(S):
        torch.testing.assert_close(again[level][0, :3], logits[level][0, :3])


def test_model_beam_search_equals_enumeration() -> None:
    model, batch = _model(num_items=12, beam_width=12), _batch(num_items=12, T=8)
    res = model.beam_search(batch, exclude_history=False)
    B, S = len(batch), model.depth
    last = batch.lengths - 1
    for b in range(B):
        ids, ts, nxt = (t[b : b + 1].repeat(12, 1) for t in (batch.ids, batch.timestamps, batch.next_ids))
        nxt[:, last[b]] = torch.arange(1, 13)  # one row per candidate item
        logits = model.level_logits(ids, ts, batch.lengths[b : b + 1].repeat(12), nxt)
        codes = model.trie.codes[1:]  # (12, S)
        logp = sum(torch.log_softmax(logits[lv][:, last[b]], -1).gather(1, codes[:, lv : lv + 1]).squeeze(1)
                   for lv in range(S))  # (12,)
        order = torch.argsort(logp, descending=True)
        assert res.items[b].tolist() == (order + 1).tolist()
        torch.testing.assert_close(res.scores[b], logp[order], atol=1e-4, rtol=1e-4)


def test_recommendations_are_real_unseen_items() -> None:
    model, batch = _model(), _batch()
    recs = model.recommend(batch, k=10)
    assert recs.shape == (4, 10) and recs.dtype == torch.int64
    assert recs.min() >= 1 and recs.max() <= N
    for b in range(4):
        assert len(set(recs[b].tolist())) == 10
        assert not set(recs[b].tolist()) & set(batch.ids[b, : batch.lengths[b]].tolist())
    with pytest.raises(ValueError, match="fewer than k"):
        model.recommend(batch, k=N)


def test_score_shape_and_minus_inf_outside_the_beam() -> None:
    model, batch = _model(), _batch()
    scores = model.score(batch)
    assert scores.shape == (4, N + 1)
    assert torch.isneginf(scores[:, 0]).all()
    finite = torch.isfinite(scores)
    assert finite.sum(1).tolist() == [5] * 4
    res = model.beam_search(batch)
    for b in range(4):
        assert sorted(finite[b].nonzero().flatten().tolist()) == sorted(res.items[b].tolist())
        assert not finite[b, batch.ids[b, : batch.lengths[b]]].any()  # history excluded
        torch.testing.assert_close(scores[b, res.items[b]], res.scores[b])
    assert (res.scores[:, :-1] >= res.scores[:, 1:]).all()  # descending


def test_long_histories_keep_their_last_events() -> None:
    model = _model(exclude_history=False)
    long = _batch(lengths=(8, 8), T=8)
    lengths, ids, ts = last_events(long.lengths, 5, long.ids, long.timestamps)
    assert ids.shape == (2, 5) and lengths.tolist() == [5, 5] and ids.tolist()[0] == long.ids[0, 3:].tolist()
    model5 = _model(max_seq_len=5, exclude_history=False)
    short = Batch(ids=ids, timestamps=ts, lengths=lengths, users=long.users)
    torch.testing.assert_close(model5.score(long), model5.score(short))
    assert model.score(long).shape == (2, N + 1)


def test_tiny_model_overfits_one_batch() -> None:
    model = _model(num_items=N).train()
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss, stats = model.training_loss(batch)
        first = first if first is not None else stats["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["loss"] < 0.1 * first and stats["acc@1"] == 1.0
    model.eval()
    rows = torch.arange(4)
    target = batch.next_ids[rows, batch.lengths - 1]
    assert model.recommend(batch, k=1)[:, 0].tolist() == target.tolist()


def test_config_errors_and_codes_shape() -> None:
    with pytest.raises(ConfigError, match="history_embedding"):
        TigerConfig(num_items=3, history_embedding="nope")
    with pytest.raises(ConfigError, match="beam_width"):
        TigerConfig(num_items=3, beam_width=0)
    # The item/code layout has no meaningful token order: the shared backbone fields that assume one are fixed.
    assert (TigerConfig(num_items=3).use_position_bias, TigerConfig(num_items=3).attn_norm) == (False, "max_seq_len")
    with pytest.raises(ConfigError, match="use_position_bias=false and attn_norm=max_seq_len"):
        TigerConfig(num_items=3, use_position_bias=True)
    with pytest.raises(ConfigError, match="use_position_bias=false and attn_norm=max_seq_len"):
        TigerConfig(num_items=3, attn_norm="length")
    with pytest.raises(ValueError, match="num_items"):
        TigerRecommender(TigerConfig(num_items=5), _codes(4))
    model = TigerRecommender(TigerConfig(num_items=N, dim=16, max_seq_len=8, history_embedding="prefixN"), _codes())
    loss, _ = model.training_loss(_batch())
    assert torch.isfinite(loss)
