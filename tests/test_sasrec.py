"""SASRec: causality, padding invariance, the shared backbone signature, scoring."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cobra.hstu import causal_mask
from cobra.models import ModelConfig, SequentialRecommender
from cobra.sasrec import SASRec

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**kw) -> SASRec:
    torch.manual_seed(0)
    args = dict(dim=16, num_blocks=2, num_heads=2, max_seq_len=24, dropout=0.0)
    args.update(kw)
    return SASRec(**args).eval()


def _inputs(T: int = 12, lengths=(12, 7, 1)):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), T, 16, generator=g)
    ts = torch.cumsum(torch.randint(0, 1000, (len(lengths), T), generator=g), dim=1)
    return x, ts, lengths


def test_sasrec_is_causal() -> None:
    model = _model()
    x, ts, lengths = _inputs(lengths=(12, 12, 12))
    out = model(x, ts, lengths)
    for p in (0, 5, 10):
        x2 = x.clone()
        x2[:, p + 1 :] = torch.randn_like(x2[:, p + 1 :])
        out2 = model(x2, ts, lengths)
        assert torch.allclose(out[:, : p + 1], out2[:, : p + 1], atol=1e-6)
        assert not torch.allclose(out[:, p + 1 :], out2[:, p + 1 :])


def test_sasrec_padding_invariance_and_zero_padding() -> None:
    model = _model()
    x, ts, lengths = _inputs(T=12, lengths=(12, 7, 1))
    out = model(x, ts, lengths)
    x_long = torch.randn(3, 20, 16)
    for b, n in enumerate(lengths.tolist()):
        x_long[b, :n] = x[b, :n]
    out_long = model(x_long, torch.zeros(3, 20, dtype=torch.int64), lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(out[b, :n], out_long[b, :n], atol=1e-6)
        assert torch.all(out_long[b, n:] == 0)


def test_sasrec_ignores_timestamps_and_handles_empty_rows() -> None:
    model = _model()
    x, ts, lengths = _inputs(lengths=(12, 0, 3))
    out = model(x, ts, lengths)
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)
    assert torch.equal(out, model(x, ts * 7 + 3, lengths))


def test_sasrec_explicit_mask() -> None:
    model = _model()
    x, ts, lengths = _inputs(lengths=(12, 7, 1))
    default = model(x, ts, lengths)
    assert torch.allclose(model(x, ts, lengths, mask=causal_mask(12)), default, atol=1e-6)
    full = torch.ones(1, 12, 12, dtype=torch.bool)
    assert not torch.allclose(model(x, ts, lengths, mask=full)[0, 0], default[0, 0])
    nothing = torch.zeros(1, 12, 12, dtype=torch.bool)  # rows with no key must not give NaN
    assert torch.isfinite(model(x, ts, lengths, mask=nothing)).all()


def test_sasrec_model_score() -> None:
    torch.manual_seed(0)
    model = SequentialRecommender(ModelConfig(num_items=30, backbone="sasrec", dim=16, max_seq_len=12)).eval()
    ids = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]])
    batch = SimpleNamespace(ids=ids, timestamps=torch.zeros_like(ids), lengths=torch.tensor([3, 1]))
    scores = model.score(batch)
    assert scores.shape == (2, 31)
    assert torch.all(scores[:, 0] == float("-inf")) and torch.isfinite(scores[:, 1:]).all()


def test_backbones_share_the_signature() -> None:
    x, ts, lengths = _inputs()
    for backbone in ("hstu", "sasrec"):
        model = SequentialRecommender(ModelConfig(num_items=30, backbone=backbone, dim=16, num_heads=2,
                                                  max_seq_len=12)).eval()
        out = model.backbone(x, ts, lengths, None, None)
        assert out.shape == (3, 12, 16)
