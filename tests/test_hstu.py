"""HSTU: time buckets, relative bias, causality, padding invariance, overfitting, scoring."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cobra.config import ConfigError
from cobra.hstu import (
    HSTU,
    BackboneConfig,
    HSTUBlock,
    RelativeBias,
    allowed_attention,
    build_hstu,
    causal_mask,
    next_timestamps,
    time_bucket,
)
from cobra.losses import sampled_softmax_loss, valid_positions
from cobra.models import ModelConfig, SequentialRecommender

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(B: int = 3, T: int = 12, N: int = 40, lengths=(12, 7, 1), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths, dtype=torch.int64)
    ids = torch.randint(1, N + 1, (B, T), generator=g)
    ts = 1_000_000 + torch.cumsum(torch.randint(0, 50_000, (B, T), generator=g), dim=1)
    pad = torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)
    return ids.masked_fill(pad, 0), ts.masked_fill(pad, 0), lengths


def _hstu(**kw) -> HSTU:
    torch.manual_seed(0)
    args = dict(dim=16, num_blocks=2, num_heads=2, max_seq_len=24, dropout=0.0)
    args.update(kw)
    model = HSTU(**args).eval()
    # Larger bias weights than the 0.02 init so the tests would notice a wrong index.
    with torch.no_grad():
        for block in model.blocks:
            block.rel_bias.pos_weight.normal_(0, 1.0)
            block.rel_bias.time_weight.normal_(0, 1.0)
    return model


@pytest.mark.parametrize(
    ("dt", "bucket"),
    [
        (0, 0),
        (1, 0),
        (-1, 0),
        (2, 2),  # ln 2 / 0.301 = 2.30
        (-2, 2),  # sign ignored
        (3, 3),  # 3.65
        (10, 7),  # 7.65
        (86_400, 37),  # one day: 11.37 / 0.301 = 37.77
        (10**9, 68),  # ~32 years: 20.72 / 0.301 = 68.85
        (10**60, 128),  # clamped
    ],
)
def test_time_bucket_hand_cases(dt: int, bucket: int) -> None:
    assert int(time_bucket(torch.tensor(float(dt)))) == bucket
    if abs(dt) < 2**62:
        assert int(time_bucket(torch.tensor(dt, dtype=torch.int64))) == bucket


def test_time_bucket_boundaries_and_formula() -> None:
    just_above = math.exp(0.301 * 1.0001)  # e^0.301 is the start of bucket 1
    just_below = math.exp(0.301 * 0.9999)
    assert time_bucket(torch.tensor([just_below, just_above, math.exp(0.301 * 5.0001)])).tolist() == [0, 1, 5]
    dt = torch.randint(-(10**9), 10**9, (1000,))
    expected = [min(128, max(0, math.floor(math.log(max(abs(x), 1)) / 0.301))) for x in dt.tolist()]
    out = time_bucket(dt)
    assert out.dtype == torch.int64 and out.tolist() == expected
    assert time_bucket(torch.zeros(2, 3, 4)).shape == (2, 3, 4)


def test_next_timestamps() -> None:
    ts = torch.tensor([[10, 20, 30, 0], [5, 0, 0, 0], [1, 2, 3, 4]])
    lengths = torch.tensor([3, 1, 4])
    assert next_timestamps(ts, lengths).tolist() == [[20, 30, 30, 30], [5, 5, 5, 5], [2, 3, 4, 4]]
    last = torch.tensor([99, 7, 50])
    assert next_timestamps(ts, lengths, last).tolist() == [[20, 30, 99, 99], [7, 7, 7, 7], [2, 3, 4, 50]]


def test_relative_bias_matches_brute_force() -> None:
    torch.manual_seed(0)
    P = 6
    bias = RelativeBias(max_seq_len=P, num_buckets=128)
    with torch.no_grad():
        bias.pos_weight.normal_()
        bias.time_weight.normal_()
    ids, ts, lengths = _batch(B=3, T=5, lengths=(5, 3, 1))
    out = bias(ts, lengths)
    assert out.shape == (3, 5, 5) and out.dtype == torch.float32
    nxt = next_timestamps(ts, lengths)
    for b in range(3):
        for i in range(5):
            for j in range(5):
                dt = int(nxt[b, i]) - int(ts[b, j])
                bucket = min(128, math.floor(math.log(max(abs(dt), 1)) / 0.301))
                expected = bias.pos_weight[j - i + P - 1] + bias.time_weight[bucket]
                assert torch.allclose(out[b, i, j], expected)
    # position-only bias broadcasts over the batch
    assert RelativeBias(P, use_time=False)(ts, lengths).shape == (1, 5, 5)


def test_relative_bias_uses_next_timestamp_and_explicit_query_times() -> None:
    torch.manual_seed(0)
    bias = RelativeBias(8, use_position=False)
    with torch.no_grad():
        bias.time_weight.copy_(torch.arange(129, dtype=torch.float32))  # bias == bucket
    ts = torch.tensor([[0, 100, 100_000, 100_000_000]])
    lengths = torch.tensor([4])
    out = bias(ts, lengths)
    # row 0 (query at position 0) uses the timestamp of position 1: 100 - 0 -> bucket 15
    assert out[0, 0, 0] == time_bucket(torch.tensor(100))
    assert out[0, 1, 0] == time_bucket(torch.tensor(100_000))
    # the last real position has no next item: its own timestamp is the query time
    assert out[0, 3, 3] == 0
    # explicit query times override (e.g. cloned times of interleaved tokens)
    q = torch.tensor([[0, 100, 100_000, 100_000_000]])
    assert torch.equal(bias(ts, lengths, q)[0].diagonal(), torch.zeros(4))


def test_relative_bias_rejects_too_long_sequences() -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        RelativeBias(4)(torch.zeros(1, 5, dtype=torch.int64), torch.tensor([5]))


def test_block_matches_naive_loop() -> None:
    torch.manual_seed(0)
    block = HSTUBlock(dim=8, num_heads=1, dropout=0.0, max_seq_len=10).eval()
    _, ts, lengths = _batch(B=1, T=6, lengths=(6,))
    x = torch.randn(1, 6, 8)
    allowed = allowed_attention(lengths, 6)
    out = block(x, ts, lengths, allowed)
    normed = F.layer_norm(x[0], (8,), eps=1e-6)
    u, v, q, k = torch.split(F.silu(normed @ block.uvqk.weight.T), [8, 8, 8, 8], dim=-1)
    rab = block.rel_bias(ts, lengths)[0]
    a = torch.zeros(6, 8)
    for i in range(6):
        for j in range(i + 1):
            a[i] += F.silu(q[i] @ k[j] + rab[i, j]) / 10 * v[j]
    expected = x[0] + block.out(u * F.layer_norm(a, (8,), eps=1e-6))
    assert torch.allclose(out[0], expected, atol=1e-5)


@pytest.mark.parametrize("attn_norm", ["max_seq_len", "length"])
def test_hstu_is_causal(attn_norm: str) -> None:
    model = _hstu(attn_norm=attn_norm)
    ids, ts, lengths = _batch(lengths=(12, 12, 12))
    x = torch.randn(3, 12, 16)
    out = model(x, ts, lengths)
    for p in (0, 4, 10):
        x2, ts2 = x.clone(), ts.clone()
        x2[:, p + 1 :] = torch.randn_like(x2[:, p + 1 :])  # later items
        ts2[:, p + 2 :] += 777_777  # later times (the time at p + 1 is p's query time)
        out2 = model(x2, ts2, lengths)
        assert torch.allclose(out[:, : p + 1], out2[:, : p + 1], atol=1e-6)
        assert not torch.allclose(out[:, p + 1 :], out2[:, p + 1 :])


def test_hstu_output_depends_on_next_timestamp() -> None:
    model = _hstu()
    _, ts, lengths = _batch(lengths=(12, 12, 12))
    x = torch.randn(3, 12, 16)
    ts2 = ts.clone()
    ts2[:, 5:] += 10**7  # moves the query time of position 4 and every later time
    out, out2 = model(x, ts, lengths), model(x, ts2, lengths)
    assert torch.allclose(out[:, :4], out2[:, :4], atol=1e-6)
    assert not torch.allclose(out[:, 4], out2[:, 4])


@pytest.mark.parametrize("attn_norm", ["max_seq_len", "length"])
def test_hstu_padding_invariance(attn_norm: str) -> None:
    model = _hstu(attn_norm=attn_norm)
    _, ts, lengths = _batch(T=12, lengths=(12, 7, 1))
    x = torch.randn(3, 12, 16)
    out = model(x, ts, lengths)
    # pad to T=20 with garbage in the padding
    x_long = torch.randn(3, 20, 16)
    ts_long = torch.randint(0, 10**9, (3, 20))
    for b, n in enumerate(lengths.tolist()):
        x_long[b, :n], ts_long[b, :n] = x[b, :n], ts[b, :n]
    out_long = model(x_long, ts_long, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(out[b, :n], out_long[b, :n], atol=1e-6)
        assert torch.all(out_long[b, n:] == 0)


def test_explicit_mask() -> None:
    model = _hstu()
    _, ts, lengths = _batch(lengths=(12, 7, 1))
    x = torch.randn(3, 12, 16)
    default = model(x, ts, lengths)
    assert torch.allclose(model(x, ts, lengths, mask=causal_mask(12)), default)
    per_row = causal_mask(12).expand(3, 12, 12).clone()
    assert torch.allclose(model(x, ts, lengths, mask=per_row), default)
    full = torch.ones(1, 12, 12, dtype=torch.bool)  # bidirectional: earlier outputs now see later items
    assert not torch.allclose(model(x, ts, lengths, mask=full)[0, 0], default[0, 0])
    with pytest.raises(ValueError, match="attention mask"):
        model(x, ts, lengths, mask=torch.ones(12, 12, dtype=torch.bool))


def test_too_long_sequence_is_refused() -> None:
    model = _hstu(max_seq_len=8)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.randn(1, 9, 16), torch.zeros(1, 9, dtype=torch.int64), torch.tensor([9]))


def test_overfit_one_batch_with_sampled_softmax() -> None:
    torch.manual_seed(0)
    N, B, T = 60, 8, 10
    config = ModelConfig(num_items=N, backbone="hstu", dim=32, num_blocks=2, num_heads=2, max_seq_len=T,
                         dropout=0.0)
    model = SequentialRecommender(config)
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(1, N + 1, (B, T + 1), generator=g)
    ids, next_ids = seq[:, :-1], seq[:, 1:].clone()
    lengths = torch.tensor([10, 10, 9, 8, 10, 6, 10, 5])
    pad = torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)
    ids, next_ids = ids.masked_fill(pad, 0), next_ids.masked_fill(pad, 0)
    ts = (torch.arange(T) * 3600).expand(B, T).masked_fill(pad, 0)
    batch = SimpleNamespace(ids=ids, timestamps=ts, lengths=lengths)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    neg_gen = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(100):
        query, positives = valid_positions(model(batch), next_ids)
        loss = sampled_softmax_loss(query, positives, model.item_embedding, num_negatives=32,
                                    generator=neg_gen, num_items=N)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.05 * losses[0], losses[::10]


def test_model_score_shape_and_padding_column() -> None:
    torch.manual_seed(0)
    model = SequentialRecommender(ModelConfig(num_items=40, dim=16, max_seq_len=12)).eval()
    ids, ts, lengths = _batch(lengths=(12, 7, 1))
    batch = SimpleNamespace(ids=ids, timestamps=ts, lengths=lengths, targets=None)
    scores = model.score(batch)
    assert scores.shape == (3, 41)
    assert torch.all(scores[:, 0] == float("-inf"))
    assert torch.isfinite(scores[:, 1:]).all()
    assert model(batch).shape == (3, 12, 16)
    assert model.item_vectors().shape == (41, 16)
    # the score of a row uses its last real position
    hidden = model(batch)
    q = F.normalize(hidden[1, 6], dim=-1)
    items = F.normalize(model.item_vectors(), dim=-1)
    assert torch.allclose(scores[1, 1:], items[1:] @ q, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_relative_bias_on_cuda_matches_cpu():
    """On CUDA the bias tables are read through an embedding lookup (a fast backward); same values and grads."""
    torch.manual_seed(0)
    cpu = RelativeBias(max_seq_len=50, num_buckets=128)
    gpu = RelativeBias(max_seq_len=50, num_buckets=128).cuda()
    gpu.load_state_dict(cpu.state_dict())
    ts = torch.cumsum(torch.randint(0, 10**6, (8, 50)), dim=1)
    lengths = torch.randint(1, 51, (8,))
    weights = torch.randn(8, 50, 50)
    (cpu(ts, lengths) * weights).sum().backward()
    (gpu(ts.cuda(), lengths.cuda()) * weights.cuda()).sum().backward()
    for a, b in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad.cpu(), rtol=1e-4, atol=1e-4)
    assert torch.allclose(cpu(ts, lengths), gpu(ts.cuda(), lengths.cuda()).cpu())


# ------------------------------------------------------------------------------- one config, one builder
def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_model_config_extends_the_backbone_config() -> None:
    from cobra.cobra_model import CobraConfig
    from cobra.model_kinds import MODELS
    from cobra.tiger import TigerConfig

    shared = {"num_items", "dim", "num_blocks", "num_heads", "max_seq_len", "dropout", "attention_dim",
              "linear_dim", "num_time_buckets", "attn_norm", "use_position_bias", "use_time_bias", "request_time"}
    assert {f.name for f in dataclasses.fields(BackboneConfig)} == shared
    for kind in MODELS.values():
        assert issubclass(kind.config, BackboneConfig)
    for config in (ModelConfig(num_items=5), CobraConfig(num_items=5), TigerConfig(num_items=5)):
        changed = config.replace(dim=32, num_heads=2)  # one replace for all, the subclass kept and re-checked
        assert type(changed) is type(config) and (changed.dim, changed.num_heads) == (32, 2)
        with pytest.raises(ConfigError, match="divisible"):
            config.replace(dim=30, num_heads=4)


@pytest.mark.parametrize("seq_len,abs_pos_emb", [(None, True), (34, True), (40, False)])
def test_build_hstu_draws_the_weights_of_a_direct_construction(seq_len, abs_pos_emb) -> None:
    """The shared builder creates the same parameters in the same order from the same RNG draws as HSTU(...)."""
    config = ModelConfig(num_items=5, dim=16, num_blocks=2, num_heads=2, max_seq_len=12, attention_dim=4,
                         num_time_buckets=64, attn_norm="length", use_time_bias=False)
    torch.manual_seed(3)
    built = build_hstu(config, seq_len=seq_len, abs_pos_emb=abs_pos_emb)
    torch.manual_seed(3)
    direct = HSTU(dim=16, num_blocks=2, num_heads=2, max_seq_len=seq_len or 12, dropout=0.2, attention_dim=4,
                  num_buckets=64, attn_norm="length", abs_pos_emb=abs_pos_emb, use_time_bias=False)
    assert _same_weights(built, direct) and built.max_seq_len == (seq_len or 12)
    assert (built.pos_emb is None) == (not abs_pos_emb)


def test_the_three_models_build_their_backbone_with_build_hstu() -> None:
    from cobra.cobra_model import CobraConfig, CobraRecommender
    from cobra.sid import add_uniqueness
    from cobra.tiger import TigerConfig, TigerRecommender

    codes = add_uniqueness(np.random.default_rng(0).integers(0, 4, (12, 2)))
    models = {
        "sequential": SequentialRecommender(ModelConfig(num_items=12, dim=16, max_seq_len=10)),
        "cobra": CobraRecommender(CobraConfig(num_items=12, dim=16, max_seq_len=10), codes, np.ones((12, 3))),
        "tiger": TigerRecommender(TigerConfig(num_items=12, dim=16, max_seq_len=10), codes),
    }
    lengths = {"sequential": 10, "cobra": 2 * (10 + 1), "tiger": 10 * 3}  # tokens: items, SID/VID pairs, codes
    for name, model in models.items():
        torch.manual_seed(0)
        reference = build_hstu(model.config, seq_len=lengths[name], abs_pos_emb=name != "tiger")
        assert model.backbone.max_seq_len == lengths[name]
        assert {k: v.shape for k, v in model.backbone.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()}, name
