"""TIGER on HSTU: generate the next item's semantic ID code by code, decoded by trie-constrained beam search.

TIGER is shown and compared with the other models in chapter 11 (book/11_experiments.py); semantic IDs
are explained in chapters 03-04 (book/03_semantic_ids.py), HSTU in chapter 05 (book/05_hstu.py).

TIGER (Rajput et al., 2023) recommends by *generating* the next item's semantic ID ``(c1, ..., cL, u)``
(``S = L + 1`` codes, the last one the uniqueness code) and scores an item by the probability of its code
sequence. The paper uses a T5 encoder-decoder; we use a decoder-only formulation on the same HSTU stack as
the other models, so the comparison is about the *output* (codes vs. item ids), not the backbone.

Tokens
    * One **item token** per history item (``T`` of them): the sum of the embeddings of its ``S`` codes
      (``history_embedding="codesum"``, the same per-level code tables the decoder reads, so history and
      generated codes share one vocabulary) or any kind of :mod:`cobra.embeddings` (``prefixN``, ``id``, ...).
      One token per item keeps the history at ``T`` tokens instead of ``S * T``.
    * One **code token** per generated code: ``code_emb[level, c] + level_emb[level] + pos_emb[slot]``.

    The hidden state of item token ``t`` predicts ``c1`` of the next item; the code token holding ``c_j``
    of that item predicts ``c_{j+1}``. An item's last code is never an input, so a target needs ``S - 1``
    code tokens.

Training (all positions in parallel)
    The sequence is ``[item_1 .. item_T, g_1 .. g_T]`` where group ``g_t`` holds the first ``S - 1`` codes
    of ``next_ids[t]`` (length ``T * S``). The mask lets item tokens attend causally to item tokens, and
    a code token of group ``t`` attend to items ``<= t`` and to the earlier code tokens of its own group,
    so position ``t``'s prediction sees exactly what decoding will see. The loss is the cross-entropy of
    every level, summed over levels and averaged over the real positions (``next_ids > 0``).

Decoding
    :func:`cobra.trie.constrained_beam_search`. At level ``l`` the ``m`` beams of a user are appended as
    ``m`` groups of ``l`` code tokens after the history, all in one sequence (``T + m * l`` tokens, split
    into chunks if longer than the backbone allows); each group sees the history and itself only, so the
    history is encoded once per level, not once per beam.

Positions and time
    The concatenated layout makes token indices meaningless, so the backbone is built without its absolute
    position embedding and relative position bias; our own ``pos_emb`` gives each item token its index
    and each code token the index of the item it follows. HSTU's attention normalisation is the constant
    ``max_seq_len`` of the backbone (``T * S``), which keeps attention independent of the layout. The
    learned time bias is kept: item tokens use HSTU's query times (:func:`cobra.hstu.next_timestamps`),
    code tokens of slot ``t`` use slot ``t``'s query time as both key and query time (a zero gap inside a
    group), in training and in decoding alike.

Scores for the evaluator
    :meth:`TigerRecommender.score` gives the ``M`` beam items their log-probabilities and every other item
    ``-inf``. The evaluator breaks ties uniformly at random (exactly, in expectation), so a target outside
    the beam is ranked uniformly among all non-beam candidates: its HR@K for ``K > M`` is the small value of
    a random guess over the rest of the catalogue, never an optimistic one. With ``exclude_history`` the
    user's (visible) history is removed inside the beam search, so all ``M`` beams are fresh items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cobra.config import ConfigError, require_choice, require_positive
from cobra.embeddings import EMBEDDING_KINDS, build_item_embedding
from cobra.hstu import BackboneConfig, build_hstu, next_timestamps, request_times, valid_mask
from cobra.trie import BeamResult, SIDTrie, constrained_beam_search

if TYPE_CHECKING:  # the data module is only needed for the type of a batch
    from cobra.data import Batch


@dataclass(frozen=True)
class TigerConfig(BackboneConfig):
    """Everything needed to build a :class:`TigerRecommender` (its loss, the code-level cross entropy, has no
    settings).

    The shared fields (``num_items``, ``dim``, ``num_blocks``, ``num_heads``, ``max_seq_len``, ``dropout``,
    ``attention_dim``, ``linear_dim``, ``num_time_buckets``, ``use_time_bias``) are those of
    :class:`cobra.hstu.BackboneConfig`; ``max_seq_len`` is the history ``T`` in items the model sees (longer
    histories keep their last ``T``; the backbone's length is ``T * S`` tokens). The concatenated item/code
    layout fixes two of them (see the module docstring): ``use_position_bias`` is ``False`` (token indices
    carry no order; ``pos_emb`` gives positions) and ``attn_norm`` is ``max_seq_len``.

    Attributes:
        beam_width: ``M``, beams kept per level by :meth:`TigerRecommender.score`.
        history_embedding: ``"codesum"`` (sum of the item's code embeddings) or a kind of
            :mod:`cobra.embeddings` (``id``, ``prefixN``, ``ngram``, ``rqsum``) over all ``S`` code columns.
        exclude_history: remove the user's history items inside the beam search.
        sid_table_size: hash rows for ``prefixN`` / ``ngram`` history embeddings.
    """

    use_position_bias: bool = False
    beam_width: int = 20
    history_embedding: str = "codesum"
    exclude_history: bool = True
    sid_table_size: int = 2**16

    def __post_init__(self) -> None:
        require_choice(self, "history_embedding", HISTORY_EMBEDDINGS)
        super().__post_init__()
        require_positive(self, ("beam_width",))
        if self.use_position_bias or self.attn_norm != "max_seq_len":
            raise ConfigError("TIGER's item/code layout needs use_position_bias=false and attn_norm=max_seq_len "
                              f"(token indices carry no order), got use_position_bias={self.use_position_bias}, "
                              f"attn_norm={self.attn_norm!r}")


class CodeSumEmbedding(nn.Module):
    """``E(item) = sum_l code_emb[offset_l + c_l]``: an item as the sum of its per-level code embeddings.

    Args:
        codes: (N + 1, S) int64 buffer of the trie (row 0 = padding).
        code_emb: the shared (sum V_l, D) table; offsets: (S,) int64 first row of each level.
    """

    def __init__(self, codes: torch.Tensor, code_emb: nn.Embedding, offsets: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("rows", codes + offsets, persistent=False)  # (N + 1, S)
        self.code_emb = [code_emb]  # shared, not registered twice

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) int64 -> (..., D) float; 0 (padding) -> 0."""
        out = self.code_emb[0](self.rows[ids]).sum(-2)  # (..., D)
        return out * (ids > 0).unsqueeze(-1).to(out.dtype)


def _codesum(model: TigerRecommender, codes: torch.Tensor) -> nn.Module:
    return CodeSumEmbedding(model.trie.codes, model.code_emb, model.offsets)


def _cobra_kind(kind: str) -> Callable[[TigerRecommender, torch.Tensor], nn.Module]:
    def build(model: TigerRecommender, codes: torch.Tensor) -> nn.Module:
        c = model.config
        return build_item_embedding(kind, c.num_items, c.dim, codes, table_size=c.sid_table_size)

    return build


HISTORY_EMBEDDINGS: dict[str, Callable[[TigerRecommender, torch.Tensor], nn.Module]] = {
    "codesum": _codesum,
    **{kind: _cobra_kind(kind) for kind in EMBEDDING_KINDS},
}


def structural_mask(slots: torch.Tensor, groups: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Attention rule of the item/code-token layout, before key padding.

    Token ``i`` is an item token when ``groups[i] < 0`` and a code token of group ``groups[i]`` otherwise.
    Query ``q`` may attend key ``k`` when ``k`` is an item token with ``slots[k] <= slots[q]``, or when both
    are code tokens of the same group and ``levels[k] <= levels[q]``.

    Args:
        slots: (n,) int64 history index of the item (item token) or of the item the group follows.
        groups: (n,) int64 group id of code tokens, -1 for item tokens.
        levels: (n,) int64 code level held by code tokens (ignored for item tokens).

    Returns:
        (n, n) bool, True where query ``i`` may attend key ``j``.
    """
    is_item = groups < 0  # (n,)
    to_item = is_item.unsqueeze(0) & (slots.unsqueeze(0) <= slots.unsqueeze(1))  # (n, n)
    same = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~is_item.unsqueeze(0) & ~is_item.unsqueeze(1)
    return to_item | (same & (levels.unsqueeze(0) <= levels.unsqueeze(1)))  # (n, n)


def last_events(lengths: torch.Tensor, max_len: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Keep the last ``max_len`` real events of right-padded rows.

    Args:
        lengths: (B,) int64. max_len: new width. tensors: (B, T) each.

    Returns:
        ``(lengths', *tensors')`` with lengths' (B,) = ``min(lengths, max_len)`` and each tensor (B, max_len)
        right-padded with 0 (unchanged when ``T <= max_len``).
    """
    T = tensors[0].shape[1]
    if T <= max_len:
        return (lengths, *tensors)
    start = (lengths - max_len).clamp(min=0).unsqueeze(1)  # (B, 1)
    cols = torch.arange(max_len, device=lengths.device).unsqueeze(0)  # (1, max_len)
    idx = (start + cols).clamp(max=T - 1)  # (B, max_len)
    new_lengths = lengths.clamp(max=max_len)
    keep = cols < new_lengths.unsqueeze(1)  # (B, max_len)
    return (new_lengths, *(t.gather(1, idx) * keep.to(t.dtype) for t in tensors))


class TigerRecommender(nn.Module):
    """TIGER: next-item semantic-ID generation on HSTU (see the module docstring).

    Args:
        config: :class:`TigerConfig`.
        codes: (N, S) int item semantic IDs, ``S = L + 1`` incl. the uniqueness code (row ``i - 1`` =
            item ``i``; ``cobra.sid.SemanticIDs.codes``). Rows must be distinct.

    Attributes:
        trie: :class:`cobra.trie.SIDTrie` of the codes.
        code_emb: (sum_l V_l, D) code-token table; level ``l`` starts at row ``offsets[l]``.
        history: item-token embedding, ids (...) -> (..., D).
        backbone: :class:`cobra.hstu.HSTU` with ``max_seq_len = T * S``.
        heads: one ``Linear(D, V_l)`` per level.
    """

    def __init__(self, config: TigerConfig, codes: torch.Tensor | np.ndarray) -> None:
        super().__init__()
        codes = torch.as_tensor(np.asarray(codes)).to(torch.int64)
        if codes.ndim != 2 or codes.shape[0] != config.num_items:
            raise ValueError(f"codes must be (num_items, L+1) = ({config.num_items}, L+1); got "
                             f"{tuple(codes.shape)} (row i-1 is item i)")
        self.config = config
        self.trie = SIDTrie(codes)
        S, D = self.trie.depth, config.dim
        vocab = self.trie.vocab_sizes
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(vocab)[:-1].tolist()]), persistent=False)
        self.code_emb = nn.Embedding(sum(vocab), D)
        self.level_emb = nn.Embedding(S, D)
        self.pos_emb = nn.Embedding(config.max_seq_len, D)
        for table in (self.code_emb, self.level_emb, self.pos_emb):
            nn.init.normal_(table.weight, 0.0, 0.02)
        self.history = HISTORY_EMBEDDINGS[config.history_embedding](self, codes)
        self.backbone = build_hstu(config, seq_len=config.max_seq_len * S, abs_pos_emb=False)
        self.final_norm = nn.LayerNorm(D)
        self.heads = nn.ModuleList(nn.Linear(D, v) for v in vocab)

    @property
    def depth(self) -> int:
        """``S = L + 1`` code levels."""
        return self.trie.depth

    # -- tokens -------------------------------------------------------------------------------------
    def _item_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, D) item tokens with positions."""
        T = ids.shape[1]
        pos = self.pos_emb(torch.arange(T, device=ids.device))  # (T, D)
        return self.history(ids) + pos.unsqueeze(0)  # (B, T, D)

    def _code_tokens(self, codes: torch.Tensor, slot_pos: torch.Tensor) -> torch.Tensor:
        """codes (B, G, l) int64 (level j in column j), slot_pos (B, G, D) -> (B, G * l, D) code tokens."""
        B, G, n = codes.shape
        levels = torch.arange(n, device=codes.device)  # (l,)
        x = self.code_emb(codes + self.offsets[:n]) + self.level_emb(levels)  # (B, G, l, D)
        return (x + slot_pos.unsqueeze(2)).reshape(B, G * n, -1)

    def _heads(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """hidden (..., D) -> (..., V_level) logits."""
        return self.heads[level](self.final_norm(hidden))

    # -- training -----------------------------------------------------------------------------------
    def level_logits(
        self, ids: torch.Tensor, timestamps: torch.Tensor, lengths: torch.Tensor, next_ids: torch.Tensor,
        query_time: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Teacher-forced logits of every level of every next item.

        Args:
            ids: (B, T) int64 history, right-padded. timestamps: (B, T) int64. lengths: (B,) int64.
            next_ids: (B, T) int64 item after each position (0 at padding).
            query_time: optional (B,) int64 time of the last next item (the request time).

        Returns:
            ``S`` tensors, level ``l``: (B, T, V_l) float logits of ``c_l`` of ``next_ids`` given the
            history up to ``t`` and the codes ``c_1 .. c_{l-1}`` of ``next_ids[t]``.
        """
        B, T = ids.shape
        S, dev = self.depth, ids.device
        target = self.trie.codes[next_ids]  # (B, T, S)
        pos = self.pos_emb(torch.arange(T, device=dev)).expand(B, T, -1)  # (B, T, D)
        x = torch.cat([self._item_tokens(ids), self._code_tokens(target[..., : S - 1], pos)], 1)  # (B, T*S, D)
        t = torch.arange(T, device=dev)
        slots = torch.cat([t, t.repeat_interleave(S - 1)])  # (T*S,)
        groups = torch.cat([torch.full((T,), -1, device=dev), t.repeat_interleave(S - 1)])
        levels = torch.cat([torch.zeros(T, dtype=torch.int64, device=dev), torch.arange(S - 1, device=dev).repeat(T)])
        keys = valid_mask(lengths, T)[:, slots]  # (B, T*S) key padding by slot
        mask = structural_mask(slots, groups, levels).unsqueeze(0) & keys.unsqueeze(1)  # (B, T*S, T*S)
        query = next_timestamps(timestamps, lengths, query_time)  # (B, T) time of each next item
        group_ts = query.repeat_interleave(S - 1, dim=1)  # (B, T*(S-1))
        full = torch.full((B,), T * S, dtype=torch.int64, device=dev)
        h = self.backbone(x, torch.cat([timestamps, group_ts], 1), full, mask, torch.cat([query, group_ts], 1))
        pred = torch.cat([h[:, :T].unsqueeze(2), h[:, T:].view(B, T, S - 1, -1)], 2)  # (B, T, S, D)
        return [self._heads(pred[:, :, level], level) for level in range(S)]

    def training_loss(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Code-level cross-entropy, summed over the ``S`` levels, mean over real positions.

        Args:
            batch: training :class:`cobra.data.Batch` with ``next_ids`` (B, T) int64.
            generator: unused (the loss draws no negatives); accepted for the generic training loop.

        Returns:
            ``(loss, stats)``: a scalar tensor and floats ``loss``, ``ce@l`` and ``acc@l`` per level
            (``l = 1..S``) and ``positions``.
        """
        if batch.next_ids is None:
            raise ValueError("training_loss needs a training batch with next_ids (cobra.data.train_loader)")
        lengths, ids, ts, nxt = last_events(batch.lengths, self.config.max_seq_len, batch.ids,
                                            batch.timestamps, batch.next_ids)
        logits = self.level_logits(ids, ts, lengths, nxt, request_times(self.config, batch))  # S x (B, T, V_l)
        real = nxt > 0  # (B, T)
        target = self.trie.codes[nxt][real]  # (P, S)
        count = int(real.sum())
        stats: dict[str, float] = {"positions": float(count)}
        loss = logits[0].new_zeros(())
        for level, lg in enumerate(logits):
            lg = lg[real]  # (P, V_l)
            ce = F.cross_entropy(lg.float(), target[:, level]) if count else lg.sum() * 0.0
            loss = loss + ce
            stats[f"ce@{level + 1}"] = float(ce.detach())
            stats[f"acc@{level + 1}"] = float((lg.argmax(-1) == target[:, level]).float().mean()) if count else 0.0
        stats["loss"] = float(loss.detach())
        return loss, stats

    # -- decoding -----------------------------------------------------------------------------------
    def step_function(self, ids: torch.Tensor, timestamps: torch.Tensor, lengths: torch.Tensor,
                 query_time: torch.Tensor | None = None):
        """Build ``step_logits(level, prefixes (B, m, level)) -> (B, m, V_level)`` for one batch.

        ``query_time`` (B,) is the request time (the code tokens' time), None: the last event's time.
        """
        B, T = ids.shape
        dev = ids.device
        hist = self._item_tokens(ids)  # (B, T, D)
        query = next_timestamps(timestamps, lengths, query_time)  # (B, T), the last item's = the request time
        now = query.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1))  # (B, 1) time of the code tokens
        slot_pos = self.pos_emb((lengths - 1).clamp(min=0)).unsqueeze(1)  # (B, 1, D)
        t = torch.arange(T, device=dev)
        limit = self.backbone.max_seq_len

        def encode_groups(prefixes: torch.Tensor) -> torch.Tensor:
            """prefixes (B, c, l) with l >= 1 -> (B, c, D) hidden state of each group's last token."""
            c, n = prefixes.shape[1], prefixes.shape[2]
            x = torch.cat([hist, self._code_tokens(prefixes, slot_pos.expand(-1, c, -1))], 1)  # (B, T+c*n, D)
            g = torch.arange(c, device=dev).repeat_interleave(n)  # (c*n,)
            slots = torch.cat([t, torch.full_like(g, T - 1)])
            groups = torch.cat([torch.full((T,), -1, device=dev), g])
            levels = torch.cat([torch.zeros_like(t), torch.arange(n, device=dev).repeat(c)])
            keys = torch.cat([valid_mask(lengths, T), torch.ones(B, c * n, dtype=torch.bool, device=dev)], 1)
            mask = structural_mask(slots, groups, levels).unsqueeze(0) & keys.unsqueeze(1)  # (B, n', n')
            group_ts = now.expand(-1, c * n)  # (B, c*n)
            full = torch.full((B,), T + c * n, dtype=torch.int64, device=dev)
            h = self.backbone(x, torch.cat([timestamps, group_ts], 1), full, mask, torch.cat([query, group_ts], 1))
            return h[:, T:].view(B, c, n, -1)[:, :, -1]  # (B, c, D)

        def step(level: int, prefixes: torch.Tensor) -> torch.Tensor:
            if level == 0:
                h = self.backbone(hist, timestamps, lengths, None, query)  # (B, T, D)
                last = h.gather(1, (lengths - 1).clamp(min=0).view(B, 1, 1).expand(-1, 1, h.shape[-1]))
                return self._heads(last, 0)  # (B, 1, V_0)
            chunk = max(1, (limit - T) // level)  # beams per backbone call
            parts = [encode_groups(p) for p in prefixes.split(chunk, dim=1)]  # a few chunks, not users
            return self._heads(torch.cat(parts, 1), level)  # (B, m, V_level)

        return step

    @torch.no_grad()
    def beam_search(
        self, batch: Batch, beam_width: int | None = None, exclude_history: bool | None = None
    ) -> BeamResult:
        """Trie-constrained beam search for the next item of each row.

        Args:
            batch: :class:`cobra.data.Batch` (ids, timestamps, lengths); rows longer than
                ``config.max_seq_len`` keep their last events.
            beam_width: ``M`` (default ``config.beam_width``).
            exclude_history: remove the row's history from the final level (default
                ``config.exclude_history``): ``batch.exclude`` when the batch has it (the evaluator's set,
                the whole history), else the items of ``batch.ids``.

        Returns:
            :class:`cobra.trie.BeamResult`: items (B, M), scores (B, M) log-probs descending, codes (B, M, S).
        """
        M = beam_width or self.config.beam_width
        exclude_history = self.config.exclude_history if exclude_history is None else exclude_history
        lengths, ids, ts = last_events(batch.lengths, self.config.max_seq_len, batch.ids, batch.timestamps)
        exclude = batch.excluded(self.config.num_items) if exclude_history else None
        step = self.step_function(ids, ts, lengths, request_times(self.config, batch))
        return constrained_beam_search(step, self.trie, len(ids), M, exclude)

    @torch.no_grad()
    def score(self, batch: Batch) -> torch.Tensor:
        """Scores ``(B, N + 1)`` for the evaluator: beam items get their log-prob, all others ``-inf``.

        Column 0 is ``-inf``. Call ``model.eval()`` first to switch dropout off (the Evaluator does).
        """
        result = self.beam_search(batch)
        out = torch.full((len(batch), self.config.num_items + 1), float("-inf"), device=result.scores.device)
        out.scatter_(1, result.items, result.scores)  # empty beams write -inf into column 0
        out[:, 0] = float("-inf")
        return out

    @torch.no_grad()
    def recommend(self, batch: Batch, k: int, exclude_history: bool | None = None) -> torch.Tensor:
        """Top-``k`` real items per row, ``(B, k)`` int64, best first.

        The beam is widened to ``max(M, k + E)`` when the history is excluded (``E`` = the most excluded items
        of a row; ``max(M, k)`` otherwise), which guarantees ``k`` real, distinct, unseen items whenever the
        catalogue has ``k`` items outside the row's history (each surviving prefix has at least one leaf, at
        most ``E`` of them are excluded).

        Raises:
            ValueError: if some row has fewer than ``k`` candidates (catalogue too small).
        """
        exclude_history = self.config.exclude_history if exclude_history is None else exclude_history
        excluded = int(batch.excluded(self.config.num_items).sum(1).max()) if exclude_history else 0
        width = max(self.config.beam_width, k + excluded)
        items = self.beam_search(batch, width, exclude_history).items[:, :k]  # (B, k)
        if bool((items == 0).any()):
            raise ValueError(f"fewer than k={k} recommendable items for some rows; the catalogue has "
                             f"{self.config.num_items} items (minus each row's history when excluded)")
        return items
