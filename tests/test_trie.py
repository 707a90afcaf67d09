"""SID trie: masks and lookups; constrained beam search against enumeration and a plain-Python reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cobra.sid import add_uniqueness
from cobra.trie import SIDTrie, constrained_beam_search

# L = 2 levels + a uniqueness code, K = 3 codes, 8 items (item i is row i - 1).
TINY = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 2, 0], [1, 2, 1], [1, 2, 2], [2, 0, 0], [2, 1, 0]])


pytestmark = pytest.mark.usefixtures("one_thread")


def test_trie_shape_masks_and_lookup() -> None:
    trie = SIDTrie(TINY)
    assert trie.depth == 3 and trie.vocab_sizes == (3, 3, 3) and trie.num_items == 8
    assert trie.num_nodes == (1, 3, 5, 8)
    assert trie.allowed_next(torch.zeros(2, 0, dtype=torch.int64)).all()
    got = trie.allowed_next(torch.tensor([[0], [1], [2]]))
    assert got.tolist() == [[True, True, False], [False, False, True], [True, True, False]]
    got = trie.allowed_next(torch.tensor([[1, 2], [0, 0], [0, 2], [2, 1]]))
    assert got.tolist() == [[True, True, True], [True, True, False], [False, False, False], [True, False, False]]
    assert trie.lookup(torch.as_tensor(TINY)).tolist() == list(range(1, 9))
    assert trie.lookup(torch.tensor([[0, 2, 0], [1, 2, 2], [2, 1, 1]])).tolist() == [0, 6, 0]
    assert trie.walk(torch.tensor([[0, 2], [1, 2]])).tolist()[0] == -1
    # row 0 of the codes buffer is padding
    assert trie.codes[0].tolist() == [0, 0, 0] and trie.codes[4].tolist() == TINY[3].tolist()


def test_trie_masks_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    codes = add_uniqueness(rng.integers(0, 4, size=(60, 2)))  # (60, 3), collisions -> uniqueness codes
    trie = SIDTrie(codes)
    rows = [tuple(r) for r in codes.tolist()]
    for length in range(trie.depth):
        prefixes = list(itertools.product(*[range(v + 1) for v in trie.vocab_sizes[:length]]))  # incl. invalid
        mask = trie.allowed_next(torch.tensor(prefixes, dtype=torch.int64).view(len(prefixes), length))
        for p, row in zip(prefixes, mask.tolist(), strict=True):
            want = [any(r[: length + 1] == (*p, c) for r in rows) for c in range(trie.vocab_sizes[length])]
            assert row == want, (p, row, want)
    assert trie.lookup(torch.as_tensor(codes)).tolist() == list(range(1, 61))


def test_trie_refuses_duplicates_and_bad_input() -> None:
    with pytest.raises(ValueError, match="uniqueness code"):
        SIDTrie(np.array([[0, 1], [0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=">= 0"):
        SIDTrie(np.array([[0, -1]]))
    with pytest.raises(ValueError, match="non-empty"):
        SIDTrie(np.zeros((3,), dtype=np.int64))


# -- beam search -------------------------------------------------------------------------------------------


def _random_model(trie: SIDTrie, batch: int, seed: int):
    """Random logits per (row, level, prefix): a step function and its plain-Python log-prob."""
    g = torch.Generator().manual_seed(seed)
    base = max(trie.vocab_sizes)
    tables = [torch.randn(batch, base**level, v, generator=g) * 2.0 for level, v in enumerate(trie.vocab_sizes)]

    def key(prefixes: torch.Tensor) -> torch.Tensor:
        weights = base ** torch.arange(prefixes.shape[-1] - 1, -1, -1)
        return (prefixes * weights).sum(-1)

    def step(level: int, prefixes: torch.Tensor) -> torch.Tensor:
        k = key(prefixes)  # (B, m)
        return tables[level].gather(1, k.unsqueeze(-1).expand(-1, -1, tables[level].shape[-1]))

    def logprob(row: int, prefix: tuple[int, ...]) -> list[float]:
        k = int(key(torch.tensor(prefix, dtype=torch.int64))) if prefix else 0
        return torch.log_softmax(tables[len(prefix)][row, k], -1).tolist()

    return step, logprob


def _enumerate(trie: SIDTrie, logprob, row: int, codes: np.ndarray) -> list[tuple[float, int]]:
    scored = []
    for item, c in enumerate(codes.tolist(), start=1):
        scored.append((sum(logprob(row, tuple(c[:level]))[c[level]] for level in range(len(c))), item))
    return sorted(scored, reverse=True)


def _reference_beam(logprob, row: int, codes: np.ndarray, width: int,
                    excluded: frozenset[int] = frozenset()) -> list[tuple[float, int]]:
    """Slow, obviously correct constrained beam search in plain Python; a prefix is valid when it leads to an
    item outside ``excluded``."""
    rows = [tuple(c) for c in codes.tolist()]
    beams: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    for level in range(codes.shape[1]):
        valid = {r[: level + 1] for i, r in enumerate(rows, start=1) if i not in excluded}
        cand = []
        for score, p in beams:
            lp = logprob(row, p)
            cand += [(score + lp[c], (*p, c)) for c in range(len(lp)) if (*p, c) in valid]
        beams = sorted(cand, reverse=True)[:width]
    return [(s, rows.index(p) + 1) for s, p in beams]


@pytest.mark.parametrize("width", [8, 11])
def test_beam_search_equals_enumeration_when_wide(width: int) -> None:
    trie, B = SIDTrie(TINY), 4
    step, logprob = _random_model(trie, B, seed=1)
    res = constrained_beam_search(step, trie, B, width)
    assert res.items.shape == (B, width) and res.scores.shape == (B, width) and res.codes.shape == (B, width, 3)
    for b in range(B):
        want = _enumerate(trie, logprob, b, TINY)
        assert res.items[b, :8].tolist() == [i for _, i in want]
        assert res.scores[b, :8].tolist() == pytest.approx([s for s, _ in want], abs=1e-5)
        assert res.items[b, 8:].eq(0).all() and torch.isneginf(res.scores[b, 8:]).all()
        assert trie.lookup(res.codes[b, :8]).tolist() == res.items[b, :8].tolist()


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_beam_search_matches_python_reference(width: int) -> None:
    rng = np.random.default_rng(3)
    codes = add_uniqueness(rng.integers(0, 3, size=(20, 2)))
    trie, B = SIDTrie(codes), 6
    step, logprob = _random_model(trie, B, seed=width)
    res = constrained_beam_search(step, trie, B, width)
    for b in range(B):
        want = _reference_beam(logprob, b, codes, width)
        assert res.items[b].tolist() == [i for _, i in want]
        assert res.scores[b].tolist() == pytest.approx([s for s, _ in want], abs=1e-5)
        assert len(set(res.items[b].tolist())) == width and res.items[b].min() >= 1  # real, distinct items


def test_beam_search_exclusion_removes_items() -> None:
    trie, B = SIDTrie(TINY), 3
    step, logprob = _random_model(trie, B, seed=5)
    exclude = torch.zeros(B, 9, dtype=torch.bool)
    exclude[0, [1, 4]] = True
    exclude[2, 8] = True
    res = constrained_beam_search(step, trie, B, 8, exclude)
    for b in range(B):
        banned = set(exclude[b].nonzero().flatten().tolist())
        want = [i for _, i in _enumerate(trie, logprob, b, TINY) if i not in banned]
        assert res.items[b, : len(want)].tolist() == want
        assert res.items[b, len(want):].eq(0).all()


@pytest.mark.parametrize("width", [1, 2, 4])
def test_excluded_items_never_take_a_beam_slot_at_any_level(width: int) -> None:
    """Prefixes whose every item is excluded (a user's history) are dropped before each cut, not after
    (excluding only at the last level fails this test for widths 2 and 4)."""
    rng = np.random.default_rng(7)
    codes = add_uniqueness(rng.integers(0, 3, size=(24, 2)))  # about 9 prefixes of 2-3 items each
    trie, B = SIDTrie(codes), 8
    step, logprob = _random_model(trie, B, seed=width)
    exclude = torch.from_numpy(rng.random((B, 25)) < 0.5)  # half the catalogue seen
    exclude[:, 0] = False
    res = constrained_beam_search(step, trie, B, width, exclude)
    for b in range(B):
        banned = frozenset(exclude[b].nonzero().flatten().tolist())
        want = _reference_beam(logprob, b, codes, width, banned)
        assert res.items[b, : len(want)].tolist() == [i for _, i in want]
        assert res.scores[b, : len(want)].tolist() == pytest.approx([s for s, _ in want], abs=1e-5)
        assert not set(res.items[b].tolist()) & banned
