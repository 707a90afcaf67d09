"""Decoders that cut the catalogue to a beam leave out the user's *whole* history first.

The evaluator removes every item a user saw before the target (the target kept) from the ranking. A
decoder that keeps only ``M`` candidates must remove the same items *before* it cuts, or older seen items
take beam slots and are then thrown away, pushing the target into the random tail. These tests run real
evaluations on users whose history is longer than ``max_seq_len`` (so ``batch.ids`` is not the history)
and compare each decoder with a slow reference written with sets and loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cobra.cobra_model import CobraConfig, CobraRecommender
from cobra.data import Batch, build_sequences, leave_one_out, synthetic_movielens
from cobra.decode import DecodeConfig
from cobra.metrics import Evaluator
from cobra.sid import add_uniqueness
from cobra.tiger import TigerConfig, TigerRecommender

pytestmark = pytest.mark.usefixtures("one_thread")

N, USERS, T = 30, 10, 4


@pytest.fixture(scope="module")
def split():
    df = synthetic_movielens(num_users=USERS, num_items=N, num_interactions=USERS * 16, seed=2, min_seq_len=12)
    return leave_one_out(build_sequences(df, USERS), N)


def _codes() -> np.ndarray:
    return add_uniqueness(np.stack([np.arange(N) % 3, np.arange(N) // 3 % 4], axis=1))  # (N, 3)


class Recorder:
    """Wraps a model's ``score`` and keeps every batch the evaluator passed."""

    def __init__(self, model, **options):
        self.model, self.options, self.batches = model, options, []

    def score(self, batch: Batch) -> torch.Tensor:
        self.batches.append(batch)
        return self.model.score(batch, **self.options)


def _history_sets(split, which: str) -> list[set[int]]:
    """Per evaluated user: every item seen before the target, minus the target (the evaluator's set)."""
    hist = split.history(which)
    _, targets = split.targets(which)
    return [set(hist.items[hist.offsets[r]:hist.offsets[r + 1]].tolist()) - {int(targets[r])}
            for r in range(hist.num_rows)]


def _evaluate(split, recommender, which="test") -> list[Batch]:
    Evaluator(split, which, max_seq_len=T, batch_size=4, progress=False).evaluate(recommender)
    return recommender.batches


def test_the_evaluator_hands_decoders_the_whole_history_and_the_request_time(split):
    recorder = Recorder(_tiger())
    batches = _evaluate(split, recorder)
    want = _history_sets(split, "test")
    got = [set(row.nonzero().flatten().tolist()) for b in batches for row in b.exclude]
    assert got == want
    visible = [set(row[row > 0].tolist()) for b in batches for row in b.ids]
    assert any(len(w - v) > 0 for w, v in zip(want, visible, strict=True))  # older items outside the window exist
    times = torch.cat([b.query_time for b in batches]).numpy()
    assert np.array_equal(times, split.target_timestamps("test"))


# ------------------------------------------------------------------------------------------------- TIGER
def _tiger() -> TigerRecommender:
    torch.manual_seed(0)
    config = TigerConfig(num_items=N, dim=16, num_blocks=1, num_heads=2, max_seq_len=T, dropout=0.0, beam_width=5)
    model = TigerRecommender(config, _codes())
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # larger weights than the init, so beams are not near ties
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return model.eval()


@torch.no_grad()
def slow_tiger_beam(model: TigerRecommender, batch: Batch, row: int, excluded: set[int], M: int) -> list[int]:
    """Plain beam search for one user: at each level keep the best ``M`` prefixes that still lead to an item
    outside ``excluded``, scored by teacher-forced log-probabilities (``level_logits``)."""
    codes = {i: tuple(model.trie.codes[i].tolist()) for i in range(1, N + 1)}
    allowed = {i: c for i, c in codes.items() if i not in excluded}
    n = min(int(batch.lengths[row]), T)
    ids = batch.ids[row:row + 1, :n]
    ts = batch.timestamps[row:row + 1, :n]
    now = batch.query_time[row:row + 1]

    def log_prob(item: int, upto: int) -> float:  # log p of the first `upto` codes of `item`
        nxt = torch.zeros_like(ids)
        nxt[0, n - 1] = item
        logits = model.level_logits(ids, ts, torch.tensor([n]), nxt, now)
        return sum(float(torch.log_softmax(logits[lv][0, n - 1], -1)[codes[item][lv]]) for lv in range(upto))

    beams: list[tuple[int, ...]] = [()]
    for level in range(model.depth):
        cands = {c[:level + 1] for c in allowed.values() if c[:level] in beams}
        rep = {p: next(i for i, c in allowed.items() if c[:level + 1] == p) for p in cands}
        scored = sorted(cands, key=lambda p: -log_prob(rep[p], level + 1))
        beams = scored[:M]
    return [next(i for i, c in allowed.items() if c == b) for b in beams]


def test_tiger_beam_matches_a_slow_reference_with_the_whole_history_left_out(split):
    model = _tiger()
    recorder = Recorder(model)
    batches = _evaluate(split, recorder)
    want_sets = iter(_history_sets(split, "test"))
    for batch in batches:
        result = model.beam_search(batch)
        for row in range(len(batch)):
            excluded = next(want_sets)
            got = [i for i in result.items[row].tolist() if i]
            assert got == slow_tiger_beam(model, batch, row, excluded, model.config.beam_width)
            assert not set(got) & excluded
    # Without the evaluator's set, the same model would have left older seen items in the beam.
    plain = [Batch(ids=b.ids, timestamps=b.timestamps, lengths=b.lengths, users=b.users, query_time=b.query_time)
             for b in batches]
    leaked = [set(model.beam_search(b).items[r].tolist()) & w
              for b, ws in zip(plain, _chunks(_history_sets(split, "test"), 4), strict=True) for r, w in enumerate(ws)]
    assert any(leaked)


def _chunks(values: list, size: int) -> list[list]:
    return [values[i:i + size] for i in range(0, len(values), size)]


# ------------------------------------------------------------------------------------------------- COBRA
def _cobra() -> CobraRecommender:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(N, 8, generator=g), dim=-1)
    config = CobraConfig(num_items=N, dim=16, num_blocks=1, num_heads=2, max_seq_len=T, dropout=0.0, eval_chunk=3)
    model = CobraRecommender(config, _codes(), text)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


@torch.no_grad()
def slow_cobra_beam(model: CobraRecommender, batch: Batch, row: int, excluded: set[int],
                    config: DecodeConfig) -> dict[int, float]:
    """COBRA's ``beam`` (softmax fusion) for one user with ``excluded`` left out of every beam's top-``n``."""
    one = Batch(ids=batch.ids[row:row + 1], timestamps=batch.timestamps[row:row + 1],
                lengths=batch.lengths[row:row + 1], users=batch.users[row:row + 1],
                query_time=batch.query_time[row:row + 1])
    vocab, items = model.sid_vocab_vectors(), model.item_vid_vectors()
    log_p = model.sid_log_probs(model.sid_state(one)[0]).tolist()
    beams = sorted(range(len(log_p)), key=lambda v: -log_p[v])[:config.beam_width]
    cands = []
    for k, v in enumerate(beams):
        q = model.vid_queries(one, vocab[v].view(1, 1, -1))[0, 0]
        cos = {i: float(F.cosine_similarity(q.double(), items[i].double(), dim=0))
               for i in range(1, N + 1) if i not in excluded}
        cands += [(k, i, cos[i]) for i in sorted(cos, key=lambda i: -cos[i])[:config.beam_items]]
    weights = torch.softmax(config.tau * torch.tensor([log_p[v] for v in beams]), 0).tolist()
    z = sum(math.exp(config.psi * c) for _, _, c in cands)
    out: dict[int, float] = {}
    for k, i, c in cands:
        out[i] = max(out.get(i, float("-inf")), weights[k] * math.exp(config.psi * c) / z)
    return out


def test_cobra_beam_matches_a_slow_reference_with_the_whole_history_left_out(split):
    model = _cobra()
    config = DecodeConfig(mode="beam", beam_width=3, beam_items=5)
    batches = _evaluate(split, Recorder(model, decode=config))
    want_sets = iter(_history_sets(split, "test"))
    for batch in batches:
        scores = model.score(batch, config)  # (B, N+1)
        for row in range(len(batch)):
            want = slow_cobra_beam(model, batch, row, next(want_sets), config)
            finite = torch.isfinite(scores[row]).nonzero().flatten().tolist()
            assert finite == sorted(want)
            assert scores[row, finite].tolist() == pytest.approx([want[i] for i in finite], rel=1e-4)
