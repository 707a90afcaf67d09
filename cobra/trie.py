"""A trie of valid semantic IDs and the trie-constrained beam search that decodes them.

Used by TIGER (cobra.tiger), shown and compared with the other models in chapter 11
(book/11_experiments.py); the semantic IDs it indexes are explained in chapter 03 (book/03_semantic_ids.py).

TIGER generates an item's semantic ID ``(c1, ..., cL, u)`` one code at a time. Most code tuples name no
item, so every step is constrained by a trie of the catalogue's IDs: a beam may only extend its prefix by a
code that keeps it the prefix of some real item, and after the last level every surviving beam *is* an item.

Layout (vectorised, no Python dicts)
    The trie has one node per distinct prefix. Depth ``l`` holds ``P_l`` nodes (``P_0 = 1``, the root;
    ``P_S = N``, one leaf per item, ``S = L + 1`` levels including the uniqueness code). Level ``l`` is a
    dense transition table ``(P_l, V_l)`` int64: the child node reached from node ``p`` by code ``c``, or -1
    when ``(prefix(p), c)`` is the prefix of no item. ``V_l`` is the vocabulary of level ``l``
    (``max code + 1``). A batch of beams is a tensor of node ids, so the mask of allowed next codes is one
    row gather (:meth:`SIDTrie.allowed`) and a step is one element gather (:meth:`SIDTrie.advance`).
    Memory is ``sum_l P_l * V_l <= S * N * max(V)`` entries (about 7 M for 27k items and 128 codes).
    Node ids are built level by level from ``parent * V_l + code`` keys with ``torch.unique``, so no key
    ever exceeds ``N * V_l`` and nothing overflows however deep the IDs are.

Scores
    :func:`constrained_beam_search` ranks beams by the model's log-probability of the code sequence,
    ``sum_l log_softmax(logits_l)[c_l]`` with the softmax over the *whole* level vocabulary (as an
    unconstrained model would score it; the trie only removes candidates, it does not renormalise). With
    ``M >= N`` the search is exact: every valid prefix survives every level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class SIDTrie(nn.Module):
    """Trie of the catalogue's semantic IDs (all levels, uniqueness code included).

    Args:
        codes: (N, S) int (numpy or torch), ``S = L + 1``; row ``i - 1`` is item ``i``. Rows must be
            distinct (the uniqueness code makes them so).

    Attributes:
        depth: ``S``, the number of code levels.
        vocab_sizes: ``(V_0, ..., V_{S-1})``, codes per level (``max + 1``).
        num_nodes: ``(P_0, ..., P_S)``, distinct prefixes per depth.
        num_items: ``N``.

    Buffers (not saved in the state dict; rebuilt from ``codes``): ``table_l`` (P_l, V_l) int64 child
    node or -1, ``item_node_l`` (N,) int64 the node at depth ``l + 1`` on item ``i + 1``'s path,
    ``leaf_items`` (N,) int64 item id of each leaf, ``codes`` (N + 1, S) int64 with a zero row 0 for
    padding.
    """

    def __init__(self, codes: torch.Tensor | np.ndarray) -> None:
        super().__init__()
        codes = torch.as_tensor(np.asarray(codes)).to(torch.int64).cpu()  # (N, S)
        if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
            raise ValueError(f"codes must be a non-empty (N, L+1) integer array; got shape {tuple(codes.shape)}")
        if int(codes.min()) < 0:
            raise ValueError("codes must be >= 0; semantic-ID codes are indices into per-level codebooks")
        N, S = codes.shape
        self.depth = S
        self.num_items = N
        self.vocab_sizes = tuple(int(codes[:, level].max()) + 1 for level in range(S))
        parent = torch.zeros(N, dtype=torch.int64)  # (N,) node of each item's prefix at the current depth
        num_nodes = [1]
        for level, vocab in enumerate(self.vocab_sizes):
            keys = parent * vocab + codes[:, level]  # (N,) < P_level * V_level
            uniq, child = torch.unique(keys, return_inverse=True)  # child: (N,) node id at depth level+1
            table = torch.full((num_nodes[-1], vocab), -1, dtype=torch.int64)  # (P_l, V_l)
            table[parent, codes[:, level]] = child
            self.register_buffer(f"table_{level}", table, persistent=False)
            self.register_buffer(f"item_node_{level}", child, persistent=False)  # (N,) item i+1's node
            num_nodes.append(len(uniq))
            parent = child
        if num_nodes[-1] != N:
            dup = N - num_nodes[-1]
            raise ValueError(
                f"{dup} semantic IDs are shared by more than one item; a trie needs distinct IDs. Add the "
                "uniqueness code (cobra.sid.add_uniqueness, or use SemanticIDs.codes, which has it)"
            )
        leaf_items = torch.zeros(N, dtype=torch.int64)
        leaf_items[parent] = torch.arange(1, N + 1)
        self.register_buffer("leaf_items", leaf_items, persistent=False)  # (N,)
        self.register_buffer("codes", torch.cat([torch.zeros(1, S, dtype=torch.int64), codes]), persistent=False)
        self.num_nodes = tuple(num_nodes)

    def table(self, level: int) -> torch.Tensor:
        """(P_level, V_level) int64 transition table of ``level`` (child node or -1)."""
        if not 0 <= level < self.depth:
            raise ValueError(f"level must be in 0..{self.depth - 1}, got {level}")
        return getattr(self, f"table_{level}")

    def root(self, *shape: int) -> torch.Tensor:
        """Root node ids, int64 zeros of ``shape``."""
        return torch.zeros(shape, dtype=torch.int64, device=self.leaf_items.device)

    def child_nodes(self, nodes: torch.Tensor, level: int) -> torch.Tensor:
        """Child node of every code: nodes (...) int64 at depth ``level`` (-1 = dead) -> (..., V_level), -1 absent."""
        rows = self.table(level)[nodes.clamp(min=0)]  # (..., V_level)
        return rows.masked_fill((nodes < 0).unsqueeze(-1), -1)

    def allowed(self, nodes: torch.Tensor, level: int) -> torch.Tensor:
        """Allowed next codes: nodes (...) int64 at depth ``level`` -> (..., V_level) bool."""
        return self.child_nodes(nodes, level) >= 0

    def advance(self, nodes: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        """Follow one code: nodes (...) int64 at depth ``level``, codes (...) int64 -> (...) int64 (-1 = invalid)."""
        vocab = self.vocab_sizes[level]
        ok = (nodes >= 0) & (codes >= 0) & (codes < vocab)  # (...)
        child = self.table(level)[nodes.clamp(min=0), codes.clamp(0, vocab - 1)]  # (...)
        return torch.where(ok, child, torch.full_like(child, -1))

    def walk(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Node of each prefix: prefixes (R, l) int64 with ``l <= S`` -> (R,) int64 (-1 = not a prefix)."""
        if prefixes.ndim != 2 or prefixes.shape[1] > self.depth:
            raise ValueError(f"prefixes must be (R, l) with l <= {self.depth}; got {tuple(prefixes.shape)}")
        nodes = self.root(prefixes.shape[0])  # (R,)
        for level in range(prefixes.shape[1]):  # S levels at most, not a loop over users
            nodes = self.advance(nodes, level, prefixes[:, level])
        return nodes

    def allowed_next(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Mask of allowed next codes: prefixes (R, l) int64, ``l < S`` -> (R, V_l) bool (all False if invalid)."""
        level = prefixes.shape[1]
        if level >= self.depth:
            raise ValueError(f"a prefix of length {level} is already a full ID (S = {self.depth})")
        return self.allowed(self.walk(prefixes), level)

    def live_nodes(self, exclude: torch.Tensor, level: int) -> torch.Tensor:
        """Nodes at depth ``level + 1`` that still lead to an item: exclude (B, N + 1) bool (True = item
        removed) -> (B, P_{level+1}) bool, True where at least one item under the node is not excluded."""
        node = getattr(self, f"item_node_{level}")  # (N,)
        keep = (~exclude[:, 1:].to(torch.bool)).to(torch.int32)  # (B, N)
        count = keep.new_zeros(keep.shape[0], self.num_nodes[level + 1])  # (B, P_{l+1})
        return count.index_add_(1, node, keep) > 0

    def items_of(self, leaves: torch.Tensor) -> torch.Tensor:
        """Item ids of leaf nodes: (...) int64 (-1 = dead) -> (...) int64 (0 = no item)."""
        items = self.leaf_items[leaves.clamp(min=0)]
        return torch.where(leaves >= 0, items, torch.zeros_like(items))

    def lookup(self, tuples: torch.Tensor) -> torch.Tensor:
        """Item of each full ID: tuples (R, S) int64 -> (R,) int64, 0 where the tuple names no item."""
        if tuples.ndim != 2 or tuples.shape[1] != self.depth:
            raise ValueError(f"tuples must be (R, {self.depth}); got {tuple(tuples.shape)}")
        return self.items_of(self.walk(tuples))


class BeamResult(NamedTuple):
    """Output of :func:`constrained_beam_search`, beams sorted by descending score.

    Attributes:
        items: (B, M) int64 item ids, 0 for an empty beam (fewer than M candidates).
        scores: (B, M) float32 log-probabilities, -inf for an empty beam.
        codes: (B, M, S) int64 the decoded IDs (meaningless where ``items == 0``).
    """

    items: torch.Tensor
    scores: torch.Tensor
    codes: torch.Tensor


StepFn = Callable[[int, torch.Tensor], torch.Tensor]


def constrained_beam_search(
    step_logits: StepFn,
    trie: SIDTrie,
    batch_size: int,
    beam_width: int,
    exclude: torch.Tensor | None = None,
) -> BeamResult:
    """Beam search over semantic IDs in which every beam stays a prefix of a real item.

    At level ``l`` each beam's score is extended by ``log_softmax(logits)`` over the level vocabulary, codes
    the trie forbids get ``-inf``, and the best ``M`` of all ``m * V_l`` extensions of a row survive. After
    the last level every finite beam is a distinct item. With ``exclude``, a prefix all of whose items are
    excluded is forbidden at every level, before the cut to ``M`` (:meth:`SIDTrie.live_nodes`), so
    excluded items (the user's history) never take a beam slot. Batched over rows; the only Python loop is over
    the ``S`` levels.

    Args:
        step_logits: ``f(level, prefixes) -> logits`` with prefixes (B, m, level) int64 (the codes decoded
            so far by each of the ``m`` beams of each row; ``m = 1`` at level 0) and logits
            (B, m, V_level) float, unnormalised.
        trie: the catalogue's :class:`SIDTrie`.
        batch_size: ``B``.
        beam_width: ``M``.
        exclude: optional (B, N + 1) bool; True items are removed (e.g. the history), and so are the
            prefixes that lead only to them.

    Returns:
        :class:`BeamResult` with exactly ``M`` columns.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    device = trie.leaf_items.device
    B, S = batch_size, trie.depth
    nodes = trie.root(B, 1)  # (B, m)
    scores = torch.zeros(B, 1, device=device)  # (B, m)
    prefixes = torch.zeros(B, 1, 0, dtype=torch.int64, device=device)  # (B, m, l)
    for level in range(S):
        vocab = trie.vocab_sizes[level]
        logits = step_logits(level, prefixes)  # (B, m, V)
        if tuple(logits.shape) != (B, nodes.shape[1], vocab):
            raise ValueError(f"step_logits({level}) returned {tuple(logits.shape)}, expected "
                             f"{(B, nodes.shape[1], vocab)}")
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B, m, V)
        children = trie.child_nodes(nodes, level)  # (B, m, V)
        ok = children >= 0  # (B, m, V)
        if exclude is not None:  # prefixes with no item left outside the exclusion set are dead
            live = trie.live_nodes(exclude.to(device), level)  # (B, P_{l+1})
            ok &= live.gather(1, children.clamp(min=0).view(B, -1)).view_as(children)
        cand = torch.where(ok, scores.unsqueeze(-1) + logp, torch.full_like(logp, float("-inf")))  # (B, m, V)
        top, idx = cand.view(B, -1).topk(min(beam_width, cand[0].numel()), dim=1)  # (B, m')
        beam, code = idx // vocab, idx % vocab  # (B, m')
        nodes = children.view(B, -1).gather(1, idx)  # (B, m')
        nodes = nodes.masked_fill(torch.isneginf(top), -1)
        prev = prefixes.gather(1, beam.unsqueeze(-1).expand(-1, -1, level))  # (B, m', l)
        prefixes = torch.cat([prev, code.unsqueeze(-1)], dim=-1)  # (B, m', l+1)
        scores = top
    items = trie.items_of(nodes)  # (B, m)
    pad = beam_width - items.shape[1]
    if pad > 0:  # fewer candidates than beams in a tiny catalogue
        items = torch.cat([items, items.new_zeros(B, pad)], 1)
        scores = torch.cat([scores, scores.new_full((B, pad), float("-inf"))], 1)
        prefixes = torch.cat([prefixes, prefixes.new_zeros(B, pad, S)], 1)
    return BeamResult(items, scores, prefixes)
