"""Decoding: exact top-k, and every mode against a slow per-user reference written out plainly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cobra.cobra_model import CobraConfig, CobraRecommender
from cobra.config import ConfigError
from cobra.data import Batch, seen_items
from cobra.decode import (
    BEAM_FUSIONS,
    DECODERS,
    DecodeConfig,
    nearest_other,
    resolve_decode,
    topk_items,
    vid_scores,
)

N, DT = 20, 8
CODES = torch.stack([torch.arange(N) % 4, torch.arange(N) // 4 % 3, torch.arange(N) // 12], dim=1)  # (N, 3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> CobraRecommender:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(N, DT, generator=g), dim=-1)
    config = CobraConfig(num_items=N, dim=16, num_blocks=1, num_heads=2, max_seq_len=6, dropout=0.0,
                         eval_chunk=3)  # small chunks: the chunked path is exercised
    m = CobraRecommender(config, CODES, text)
    with torch.no_grad():  # larger weights than the init, so the choices are not near ties
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m.eval()


@pytest.fixture(scope="module")
def batch() -> Batch:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6, 3, 1, 5, 2])
    pad = torch.arange(6).unsqueeze(0) >= lengths.unsqueeze(1)
    ids = torch.randint(1, N + 1, (5, 6), generator=g).masked_fill(pad, 0)
    ts = (10_000 + torch.cumsum(torch.randint(1, 50_000, (5, 6), generator=g), 1)).masked_fill(pad, 0)
    return Batch(ids=ids, timestamps=ts, lengths=lengths, users=torch.arange(1, 6),
                 targets=torch.ones(5, dtype=torch.int64))


def _one(batch: Batch, b: int) -> Batch:
    n = int(batch.lengths[b])
    return Batch(ids=batch.ids[b : b + 1, :n], timestamps=batch.timestamps[b : b + 1, :n],
                 lengths=batch.lengths[b : b + 1], users=batch.users[b : b + 1])


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))


@torch.no_grad()
def reference(model: CobraRecommender, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """One user at a time, lists and loops, no batching tricks."""
    vocab = model.sid_vocab_vectors()
    items = model.item_vid_vectors()
    out = torch.full((len(batch), N + 1), float("-inf"))
    for b in range(len(batch)):
        one = _one(batch, b)
        log_p = model.sid_log_probs(model.sid_state(one)[0]).tolist()  # V floats
        order = sorted(range(len(log_p)), key=lambda v: -log_p[v])
        if config.mode == "sparse":  # each item: log p of its own code tuple
            vocab_codes = model.vocab_codes.tolist()
            for i in range(1, N + 1):
                out[b, i] = log_p[vocab_codes.index(CODES[i - 1, : model.vocab_codes.shape[1]].tolist())]
            continue
        if config.mode in ("direct", "neighbor", "soft"):
            if config.mode == "direct":
                e = vocab[order[0]]
            elif config.mode == "neighbor":
                others = [v for v in range(len(vocab)) if v != order[0]]
                e = vocab[max(others, key=lambda v: _cos(vocab[order[0]], vocab[v]))]
            else:
                top = order[: config.soft_top_k]
                w = torch.softmax(torch.tensor([log_p[v] for v in top]) / config.soft_temperature, 0)
                e = sum(w[i] * vocab[v] for i, v in enumerate(top))
            q = model.vid_queries(one, e.view(1, 1, -1))[0, 0]
            for i in range(1, N + 1):
                out[b, i] = _cos(q, items[i])
            continue
        seen = set(one.ids[0].tolist())
        beams = order[: config.beam_width]
        cands = []  # (beam rank, item, cos, log p_vid)
        for k, v in enumerate(beams):
            q = model.vid_queries(one, vocab[v].view(1, 1, -1))[0, 0]
            cos = {i: _cos(q, items[i]) for i in range(1, N + 1) if i not in seen}
            log_z = math.log(sum(math.exp(c / model.config.temperature) for c in cos.values()))
            best = sorted(cos, key=lambda i: -cos[i])[: config.beam_items]
            cands += [(k, i, cos[i], cos[i] / model.config.temperature - log_z) for i in best]
        sid_lp = [log_p[v] for v in beams]
        if config.fusion == "softmax":
            beam_w = torch.softmax(config.tau * torch.tensor(sid_lp), 0).tolist()
            z = sum(math.exp(config.psi * c) for _, _, c, _ in cands)
        for k, i, c, vlp in cands:
            if config.fusion == "prod":
                s = config.alpha * sid_lp[k] + (1 - config.alpha) * vlp
            elif config.fusion == "sum":
                s = config.alpha * math.exp(sid_lp[k]) + (1 - config.alpha) * math.exp(vlp)
            else:
                s = beam_w[k] * math.exp(config.psi * c) / z
            out[b, i] = max(float(out[b, i]), s)
    return out


def _check(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    assert torch.allclose(got[finite].double(), want[finite].double(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["direct", "neighbor", "soft", "sparse"])
def test_full_score_modes_match_the_reference(model, batch, mode):
    config = DecodeConfig(mode=mode, soft_top_k=3, soft_temperature=0.7)
    _check(model.score(batch, config), reference(model, batch, config))


@pytest.mark.parametrize("fusion", sorted(BEAM_FUSIONS))
def test_beam_matches_the_reference(model, batch, fusion):
    config = DecodeConfig(mode="beam", beam_width=3, beam_items=4, fusion=fusion, alpha=0.3)
    got = model.score(batch, config)
    _check(got, reference(model, batch, config))
    assert (torch.isfinite(got).sum(1) <= 3 * 4).all()  # at most M x N candidates
    assert not (torch.isfinite(got) & seen_items(batch.ids, N)).any()  # history filtered


def test_beam_keeps_history_when_asked(model, batch):
    config = DecodeConfig(mode="beam", beam_width=2, beam_items=N, filter_history=False)
    got = model.score(batch, config)
    assert torch.isfinite(got[:, 1:]).all()  # every item retrieved by the first beam already


def test_default_mode_and_resolve(model, batch):
    assert torch.equal(model.score(batch), model.score(batch, "direct"))
    default = DecodeConfig(beam_width=7)
    assert resolve_decode(None, default) is default
    assert resolve_decode("beam", default) == DecodeConfig(mode="beam", beam_width=7)
    with pytest.raises(ConfigError, match="decode mode"):
        resolve_decode("greedy", default)
    with pytest.raises(ConfigError, match="fusion"):
        DecodeConfig(fusion="max")
    assert set(DECODERS) == {"direct", "neighbor", "soft", "beam", "sparse"}


def test_sparse_ties_items_that_share_a_sid(model, batch):
    """With 2 of the 3 code columns as the SID, items 1 and 13 (codes 0,0,x) share one and tie."""
    torch.manual_seed(1)
    coarse = CobraRecommender(model.config.replace(sid_levels=2), CODES, model.vid_tower.text[1:]).eval()
    config = DecodeConfig(mode="sparse")
    got = coarse.score(batch, config)
    _check(got, reference(coarse, batch, config))
    assert torch.equal(got[:, 1], got[:, 13]) and not torch.equal(got[:, 1], got[:, 2])


def test_topk_items_is_exact():
    g = torch.Generator().manual_seed(0)
    items = torch.randn(N + 1, 4, generator=g)
    query = torch.randn(3, 4, generator=g)
    exclude = torch.zeros(3, N + 1, dtype=torch.bool)
    exclude[0, [1, 2, 3]] = True
    scores, ids = topk_items(query, items, exclude, k=5)
    full = vid_scores(query, items, exclude)
    for b in range(3):
        ranked = sorted(range(1, N + 1), key=lambda i: -float(full[b, i]))
        ranked = [i for i in ranked if not exclude[b, i]]
        assert ids[b].tolist() == ranked[:5]
        assert torch.allclose(scores[b], full[b, ids[b]])
    assert not set(ids[0].tolist()) & {1, 2, 3}
    assert topk_items(query, items, k=100)[1].shape == (3, N)
    assert torch.isinf(full[:, 0]).all()


def test_nearest_other_never_returns_itself():
    vectors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.0]])
    assert nearest_other(vectors, torch.tensor([0, 2, 3])).tolist() == [3, 1, 0]
