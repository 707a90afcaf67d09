"""COBRA on HSTU: an interleaved sparse (SID) / dense (VID) generative recommender.

Explained in chapters 08 (book/08_interleaving.py), 08 (book/09_dual_loss.py) and 09 (book/10_decoding.py).

Towers
    * SID tower: an item's sparse token is the PrefixN embedding of its semantic-ID codes
      (:mod:`cobra.embeddings`; any ``SID_EMBEDDINGS`` kind can be chosen).
    * VID tower: an item's dense token is a learned linear projection of its *frozen* text vector
      (:mod:`cobra.text`), optionally plus a learned item-ID embedding (``vid_id_embedding``).
      The same tower gives the VID inputs and the VID targets (shared input/output tables, as in
      the HSTU reference).

The sequence (:mod:`cobra.interleave`)
    ``[SID_0, VID_0, SID_1, VID_1, ..., SID_L]``: training appends the window's next item as an
    open ``SID`` token (its VID is not an input), so training ends on the same kind of token as
    decoding, which appends the *predicted* SID. The hidden state at ``VID_t`` predicts the SID of
    item ``t + 1``; the hidden state at ``SID_t`` predicts the VID of item ``t``. Times are cloned
    per pair; the appended SID carries the last event's time (the "now" rule of :mod:`cobra.hstu`,
    identical in training and evaluation). The backbone is :class:`cobra.hstu.HSTU` over
    ``2 * (max_seq_len + 1)`` token slots.

The SID vocabulary
    The model's sparse outputs are the distinct code tuples of the items (``V`` of them): with a
    uniqueness column every item has its own tuple (``V = N``); with ``sid_levels`` below the number
    of columns several items share one. SID scores, the SID loss and the decoders all work over
    this vocabulary, so items that share a tuple are never each other's negatives.

Losses (:mod:`cobra.losses`, ``loss = loss_sid + lambda_vid * loss_vid``)
    * SID, at ``VID`` positions: ``sampled-softmax`` over the vocabulary's SID vectors (cosine /
      temperature, uniform negatives, accidental hits masked), or ``code-ce``: one linear head per
      code level, the sum of the levels' cross entropies.
    * VID, at ``SID`` positions: InfoNCE with negatives ``in-batch`` (the source article's),
      ``catalogue`` (every item, independent of the batch; the default) or ``cache`` (a FIFO
      :class:`cobra.losses.VidCache`, pushed after each training loss).

Scoring: :meth:`CobraRecommender.score` runs a decoder of :mod:`cobra.decode` (default
``config.decode``) and fits the evaluator's ``Recommender`` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cobra.config import ConfigError, require_choice, require_positive
from cobra.decode import DecodeConfig, resolve_decode
from cobra.decode import decode as run_decoder
from cobra.embeddings import SID_EMBEDDINGS, ItemIdEmbedding, SIDOptions
from cobra.hstu import BackboneConfig, build_hstu, request_times, valid_mask
from cobra.interleave import Interleaved, Interleaver, interleave_targets
from cobra.losses import (
    ACCIDENTAL_HIT_LOGIT,
    VID_NEGATIVES,
    VidCache,
    code_ce_loss,
    info_nce_loss,
    sample_negatives,
    sampled_softmax_loss,
)

if TYPE_CHECKING:
    from cobra.data import Batch


@dataclass(frozen=True)
class CobraConfig(BackboneConfig):
    """Everything needed to build a :class:`CobraRecommender` and train it (its losses included).

    The shared fields (``num_items``, ``dim``, ``num_blocks``, ``num_heads``, ``max_seq_len``, ``dropout``,
    ``attention_dim``, ``linear_dim``, ``num_time_buckets``, ``attn_norm``, ``use_position_bias``,
    ``use_time_bias``) are those of :class:`cobra.hstu.BackboneConfig`; ``max_seq_len`` counts *items*
    (the backbone sees ``2 * (max_seq_len + 1)`` token slots).

    Attributes:
        sid_kind: SID tower, a key of ``cobra.embeddings.SID_EMBEDDINGS`` (``prefixN``).
        sid_table_size: hash rows of the SID table.
        sid_levels: code columns that form the SID (default all, including the uniqueness column).
        vid_id_embedding: add a learned item-ID embedding to the VID projection.
        lambda_vid: weight of the VID loss.
        temperature: logits are cosine / temperature (SID sampled softmax and VID InfoNCE).
        num_negatives: SID sampled-softmax negatives per position.
        vid_negatives: ``in-batch``, ``catalogue`` or ``cache``.
        cache_size: slots of the VID cache (``cache`` only).
        sid_loss: ``full-softmax`` (over the whole SID vocabulary), ``sampled-softmax`` or ``code-ce``
            (keys of ``SID_LOSSES``).
        decode: default :class:`cobra.decode.DecodeConfig` of :meth:`CobraRecommender.score`.
        eval_chunk: rows per backbone call when scoring (bounds memory of large eval batches / beams).
    """

    sid_kind: str = "prefixN"
    sid_table_size: int = 2**14
    sid_levels: int | None = None
    vid_id_embedding: bool = False
    lambda_vid: float = 1.0
    temperature: float = 0.05
    num_negatives: int = 128
    vid_negatives: str = "catalogue"
    cache_size: int = 8192
    sid_loss: str = "sampled-softmax"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval_chunk: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.decode, dict):
            object.__setattr__(self, "decode", DecodeConfig(**self.decode))
        require_choice(self, "sid_kind", sorted(SID_EMBEDDINGS))
        require_choice(self, "vid_negatives", VID_NEGATIVES)
        require_choice(self, "sid_loss", sorted(SID_LOSSES))
        super().__post_init__()
        require_positive(self, ("num_negatives", "cache_size", "eval_chunk"))
        if self.temperature <= 0 or self.lambda_vid < 0:
            raise ConfigError(f"temperature must be > 0 and lambda_vid >= 0, got {self.temperature}, "
                              f"{self.lambda_vid}")


class VidTower(nn.Module):
    """Item VIDs: ``Linear(text[i])`` (+ ``id_table[i]``), zero for padding.

    Args:
        text_vectors: (N, Dt) float32 frozen item text vectors (row i-1 = item i).
        dim: ``D``.
        id_embedding: add a learned ID embedding.

    Buffers:
        text: (N + 1, Dt) float32, row 0 zero.
    """

    def __init__(self, text_vectors: torch.Tensor | np.ndarray, dim: int, id_embedding: bool = False) -> None:
        super().__init__()
        text = torch.as_tensor(np.asarray(text_vectors, dtype=np.float32))
        if text.dim() != 2:
            raise ValueError(f"text_vectors must be (N, Dt), got {tuple(text.shape)}")
        self.num_items = text.shape[0]
        self.register_buffer("text", torch.cat([torch.zeros(1, text.shape[1]), text]))  # (N+1, Dt)
        self.proj = nn.Linear(text.shape[1], dim)
        self.ids = ItemIdEmbedding(self.num_items, dim) if id_embedding else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (...) int64 in ``0..N`` -> (..., D) float, zero at padding."""
        out = self.proj(self.text[ids])  # (..., D)
        if self.ids is not None:
            out = out + self.ids(ids)
        return out * (ids != 0).unsqueeze(-1).to(out.dtype)


def _sid_vocabulary(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """codes (N, L) -> vocab codes (V, L), item -> vocab index (N + 1,) (-1 at 0), vocab -> first item (V,)."""
    vocab, inverse = torch.unique(codes, dim=0, return_inverse=True)  # (V, L), (N,)
    items = torch.arange(1, codes.shape[0] + 1)
    first = torch.full((vocab.shape[0],), codes.shape[0] + 1, dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, items, reduce="amin")  # (V,) lowest item id per tuple
    return vocab, torch.cat([torch.tensor([-1]), inverse]), first


def _keep_last(ids: torch.Tensor, lengths: torch.Tensor, width: int, *others: torch.Tensor) -> list[torch.Tensor]:
    """Keep the last ``width`` real events of right-padded rows; trim the columns to the longest row.

    Returns [lengths (B,), ids (B, W), *others (B, W)] with ``W = min(width, max(lengths))``.
    """
    n = lengths.clamp(max=width)  # (B,)
    W = max(int(n.max()) if n.numel() else 0, 1)
    start = (lengths - n).unsqueeze(1)  # (B, 1)
    idx = (start + torch.arange(W, device=ids.device).unsqueeze(0)).clamp(max=ids.shape[1] - 1)  # (B, W)
    real = valid_mask(n, W)  # (B, W)
    return [n] + [t.gather(1, idx).masked_fill(~real, 0) for t in (ids, *others)]


class CobraRecommender(nn.Module):
    """The COBRA model: SID and VID towers, interleaving, HSTU, dual loss, decoders.

    Args:
        config: :class:`CobraConfig`.
        codes: (N, L + 1) int64 semantic-ID codes (row i-1 = item i), from :func:`cobra.sid.fit_semantic_ids`.
        text_vectors: (N, Dt) float32 frozen item text vectors, from :func:`cobra.text.embed_items`.

    Attributes:
        sid_tower: ids (...) -> (..., D) SID vectors. vid_tower: ids (...) -> (..., D) VID vectors.
        interleaver: type embedding and interleaving. backbone: :class:`cobra.hstu.HSTU`.
        code_heads: per-level linear heads (``sid_loss="code-ce"``), else None.
        cache: :class:`cobra.losses.VidCache` (``vid_negatives="cache"``), else None.

    Buffers:
        vocab_codes (V, L'), item_sid (N + 1,) vocabulary index of each item (-1 for padding),
        vocab_item (V,) one item per vocabulary entry.
    """

    def __init__(self, config: CobraConfig, codes: torch.Tensor | np.ndarray,
                 text_vectors: torch.Tensor | np.ndarray) -> None:
        super().__init__()
        codes = torch.as_tensor(np.asarray(codes)).to(torch.int64)
        if codes.dim() != 2 or codes.shape[0] != config.num_items:
            raise ValueError(f"codes must be (N, L) with N = num_items = {config.num_items}; got "
                             f"{tuple(codes.shape)}. Pass cobra.sid codes for the same dataset.")
        if len(text_vectors) != config.num_items:
            raise ValueError(f"text_vectors has {len(text_vectors)} rows but num_items = {config.num_items}; "
                             "row i-1 must be item i (cobra.text.embed_items(...).vectors)")
        self.config = config
        levels = config.sid_levels or codes.shape[1]
        options = SIDOptions(table_size=config.sid_table_size, levels=levels)
        self.sid_tower = SID_EMBEDDINGS[config.sid_kind](codes, config.dim, options)
        vocab, item_sid, vocab_item = _sid_vocabulary(codes[:, :levels])
        self.register_buffer("vocab_codes", vocab, persistent=False)  # (V, L')
        self.register_buffer("item_sid", item_sid, persistent=False)  # (N+1,)
        self.register_buffer("vocab_item", vocab_item, persistent=False)  # (V,)
        self.vid_tower = VidTower(text_vectors, config.dim, config.vid_id_embedding)
        self.interleaver = Interleaver(config.dim)
        self.backbone = build_hstu(config, seq_len=2 * (config.max_seq_len + 1))
        self.code_heads = None
        if config.sid_loss == "code-ce":
            sizes = (vocab.max(dim=0).values + 1).tolist()  # K_l per level
            self.code_heads = nn.ModuleList(nn.Linear(config.dim, k) for k in sizes)
        self.cache = VidCache(config.cache_size, config.dim) if config.vid_negatives == "cache" else None

    # ------------------------------------------------------------------------------------------ item vectors
    @property
    def num_items(self) -> int:
        return self.config.num_items

    def item_sid_vectors(self) -> torch.Tensor:
        """(N + 1, D) float SID vector of every item (row 0 zero)."""
        return self.sid_tower.all_items()

    def item_vid_vectors(self) -> torch.Tensor:
        """(N + 1, D) float VID of every item (row 0 zero)."""
        return self.vid_tower(torch.arange(self.num_items + 1, device=self.item_sid.device))

    def sid_vocab_vectors(self) -> torch.Tensor:
        """(V, D) float SID vector of every vocabulary entry (distinct code tuple)."""
        return self.sid_tower(self.vocab_item)

    # ------------------------------------------------------------------------------------------ the encoder
    def encode_tokens(self, sid: torch.Tensor, vid: torch.Tensor, timestamps: torch.Tensor,
                      lengths: torch.Tensor, drop_last_vid: bool = False,
                      query_time: torch.Tensor | None = None) -> tuple[torch.Tensor, Interleaved]:
        """Interleave per-item vectors and run the backbone.

        Args:
            sid: (B, T, D) SID token vectors. vid: (B, T, D) VID token vectors.
            timestamps: (B, T) int64. lengths: (B,) int64 items per row.
            drop_last_vid: the last item is an open SID (its VID slot is padding).
            query_time: optional (B,) int64 query time of the last real token (the request time).

        Returns:
            hidden (B, 2T, D) float (zero on padding tokens) and the :class:`cobra.interleave.Interleaved` input.
        """
        inter = self.interleaver(sid, vid, timestamps, lengths, drop_last_vid, query_time)
        hidden = self.backbone(inter.tokens, inter.timestamps, inter.lengths, inter.mask, inter.query_timestamps)
        return hidden, inter

    def encode_items(self, items: torch.Tensor, timestamps: torch.Tensor, lengths: torch.Tensor,
                     drop_last_vid: bool = False, query_time: torch.Tensor | None = None) -> torch.Tensor:
        """items (B, T) int64, timestamps (B, T), lengths (B,), query_time (B,) or None -> hidden (B, 2T, D)."""
        return self.encode_tokens(self.sid_tower(items), self.vid_tower(items), timestamps, lengths,
                                  drop_last_vid, query_time)[0]

    @staticmethod
    def _append(items: torch.Tensor, timestamps: torch.Tensor, lengths: torch.Tensor, new_items: torch.Tensor,
                new_time: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Append one item per row at position ``lengths``, at time ``new_time`` (B,) (the request time; None:
        the last event's time).

        Returns items (B, T + 1), timestamps (B, T + 1), lengths + 1 (B,) (rows with no events stay empty).
        """
        B = items.shape[0]
        rows = torch.arange(B, device=items.device)
        last = (lengths - 1).clamp(min=0)  # (B,)
        items = torch.cat([items, items.new_zeros(B, 1)], dim=1)  # (B, T+1)
        timestamps = torch.cat([timestamps, timestamps.new_zeros(B, 1)], dim=1)  # (B, T+1)
        has = lengths > 0
        items[rows, lengths] = torch.where(has, new_items, 0)
        when = timestamps[rows, last] if new_time is None else new_time.to(timestamps.dtype)  # (B,)
        timestamps[rows, lengths] = torch.where(has, when, 0)
        return items, timestamps, torch.where(has, lengths + 1, 0)

    # ----------------------------------------------------------------------------------------------- losses
    def sid_logits_codes(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        """``code-ce`` heads: (..., D) -> L' tensors (..., K_l)."""
        if self.code_heads is None:
            raise RuntimeError("this model has no code heads; build it with sid_loss='code-ce'")
        return [head(hidden) for head in self.code_heads]

    def sid_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-probability of every vocabulary SID as the next one: (..., D) -> (..., V) float32.

        ``sampled-softmax`` models: ``log_softmax(cos(h, SID_v) / temperature)`` over the vocabulary;
        ``code-ce`` models: ``sum_l log_softmax(head_l(h))[c_l(v)]``, renormalised over the vocabulary.
        """
        if self.code_heads is None:
            q = F.normalize(hidden.float(), dim=-1)  # (..., D)
            vocab = F.normalize(self.sid_vocab_vectors().float(), dim=-1)  # (V, D)
            return torch.log_softmax(q @ vocab.T / self.config.temperature, dim=-1)  # (..., V)
        total = 0.0
        for level, logits in enumerate(self.sid_logits_codes(hidden)):
            total = total + torch.log_softmax(logits.float(), dim=-1)[..., self.vocab_codes[:, level]]  # (..., V)
        return torch.log_softmax(total, dim=-1)

    def training_loss(self, batch: Batch, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """``loss_sid + lambda_vid * loss_vid`` of a training batch.

        Args:
            batch: ids / timestamps / next_ids (B, T) int64, lengths (B,) (from :func:`cobra.data.train_loader`).
            generator: torch generator for the SID negatives (on the model's device), or None.

        Returns:
            loss () float32 with gradients, and ``{"loss_sid": float, "loss_vid": float}``.
        """
        if batch.next_ids is None:
            raise ValueError("training_loss needs a training batch with next_ids (cobra.data.train_loader)")
        lengths, ids, ts, nxt = _keep_last(batch.ids, batch.lengths, self.config.max_seq_len,
                                           batch.timestamps, batch.next_ids)
        last = nxt.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,) the window's next item
        # (B, T+1): ... x_{L-1}, x_L (open SID, at the request time when the model uses it)
        items, ts, n = self._append(ids, ts, lengths, last, request_times(self.config, batch))
        hidden = self.encode_items(items, ts, n, drop_last_vid=True)  # (B, 2T+2, D)
        targets, sid_pos, vid_pos = interleave_targets(items, n, drop_last_vid=True)  # (B, 2T+2)
        loss_sid = SID_LOSSES[self.config.sid_loss](self, hidden[sid_pos], targets[sid_pos], generator)
        q_vid, pos_vid = hidden[vid_pos], targets[vid_pos]  # (M, D), (M,)
        loss_vid = info_nce_loss(q_vid, pos_vid, self.vid_tower, self.config.vid_negatives,
                                 self.config.temperature, cache=self.cache, num_items=self.num_items)
        if self.cache is not None and self.training:
            self.cache.push(pos_vid, self.vid_tower(pos_vid))
        loss = loss_sid + self.config.lambda_vid * loss_vid
        return loss, {"loss_sid": float(loss_sid.detach()), "loss_vid": float(loss_vid.detach())}

    def forward(self, batch: Batch, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_loss` (so DDP / compile wrappers see the whole step)."""
        return self.training_loss(batch, generator)

    # ------------------------------------------------------------------------------------------- decoding
    def _history(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The last ``max_seq_len`` events: ids (B, W), timestamps (B, W), lengths (B,), request time (B,) or None."""
        lengths, ids, ts = _keep_last(batch.ids, batch.lengths, self.config.max_seq_len, batch.timestamps)
        return ids, ts, lengths, request_times(self.config, batch)

    def sid_state(self, batch: Batch) -> torch.Tensor:
        """(B, D) hidden state at each history's last ``VID`` token (it predicts the next SID)."""
        ids, ts, lengths, now = self._history(batch)
        out = []
        for lo in range(0, ids.shape[0], self.config.eval_chunk):
            sl = slice(lo, lo + self.config.eval_chunk)
            hidden = self.encode_items(ids[sl], ts[sl], lengths[sl], query_time=None if now is None else now[sl])
            last = (2 * lengths[sl] - 1).clamp(min=0)  # (b,) token index of VID_{L-1}
            out.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        return torch.cat(out)  # (B, D)

    def vid_queries(self, batch: Batch, sid_inputs: torch.Tensor) -> torch.Tensor:
        """VID queries after appending given SID vectors to each history.

        Args:
            batch: histories ids / timestamps (B, T), lengths (B,).
            sid_inputs: (B, M, D) float: ``M`` candidate SID vectors per row (appended one at a time).

        Returns:
            (B, M, D) float hidden state at the appended (open) SID token, one per candidate.
        """
        ids, ts, lengths, now = self._history(batch)
        B, M, D = sid_inputs.shape
        items, ts, n = self._append(ids, ts, lengths, torch.zeros_like(lengths), now)  # (B, T+1); slot L set below
        items, ts, n = (t.repeat_interleave(M, dim=0) for t in (items, ts, n))  # (B*M, ...)
        flat = sid_inputs.reshape(B * M, D)
        out = []
        for lo in range(0, B * M, self.config.eval_chunk):
            sl = slice(lo, lo + self.config.eval_chunk)
            rows = torch.arange(items[sl].shape[0], device=items.device)
            slot = (n[sl] - 1).clamp(min=0)  # (b,) position of the open SID
            sid = self.sid_tower(items[sl])  # (b, T+1, D)
            sid = sid.index_put((rows, slot), flat[sl].to(sid.dtype))  # the candidate SID vector
            hidden, _ = self.encode_tokens(sid, self.vid_tower(items[sl]), ts[sl], n[sl], drop_last_vid=True)
            out.append(hidden[rows, 2 * slot])  # (b, D) hidden at the open SID token
        return torch.cat(out).view(B, M, -1)

    @torch.no_grad()
    def score(self, batch: Batch, decode: DecodeConfig | str | None = None) -> torch.Tensor:
        """Scores of every item for the next step, (B, N + 1) float32; column 0 is ``-inf``.

        Args:
            batch: evaluation batch (ids / timestamps (B, T), lengths (B,)).
            decode: a :class:`cobra.decode.DecodeConfig`, a mode name, or None (``config.decode``).

        Runs without gradients; call ``model.eval()`` first to switch dropout off.
        """
        return run_decoder(self, batch, resolve_decode(decode, self.config.decode))


def _sid_sampled_softmax(model: CobraRecommender, query: torch.Tensor, targets: torch.Tensor,
                         generator: torch.Generator | None) -> torch.Tensor:
    """Sampled softmax over the SID vocabulary; targets (M,) item ids -> vocabulary entries.

    Equal to :func:`cobra.losses.sampled_softmax_loss` over the table ``(V + 1, D)`` (row 0 padding). When the
    vocabulary is small (``V <= R * D``) the logits of the sampled rows are gathered from one ``(M, V + 1)``
    product instead of normalising ``(M, R, D)`` gathered vectors: the same numbers, several times faster.
    """
    vocab = model.sid_vocab_vectors()  # (V, D)
    table = torch.cat([vocab.new_zeros(1, vocab.shape[1]), vocab])  # (V+1, D), row 0 padding
    positives = model.item_sid[targets] + 1  # (M,) in 1..V
    R, temperature = model.config.num_negatives, model.config.temperature
    V, D = vocab.shape
    if V > R * D or query.shape[0] == 0:
        return sampled_softmax_loss(query, positives, table, R, temperature, generator)
    negatives = sample_negatives(query.shape[0], R, V, generator, query.device)  # (M, R)
    logits = F.normalize(query.float(), dim=-1) @ F.normalize(table.float(), dim=-1).T / temperature  # (M, V+1)
    pos_logits = logits.gather(1, positives.unsqueeze(1))  # (M, 1)
    neg_logits = logits.gather(1, negatives).masked_fill(negatives == positives.unsqueeze(1), ACCIDENTAL_HIT_LOGIT)
    return -F.log_softmax(torch.cat([pos_logits, neg_logits], dim=1), dim=1)[:, 0].mean()


def _sid_full_softmax(model: CobraRecommender, query: torch.Tensor, targets: torch.Tensor,
                      generator: torch.Generator | None) -> torch.Tensor:
    """Softmax over the whole SID vocabulary, ``cos(h, SID_v) / temperature``: the SID step's share of the
    sequential models' full softmax. query (M, D), targets (M,) item ids -> () mean cross-entropy."""
    log_p = model.sid_log_probs(query)  # (M, V)
    return -log_p.gather(1, model.item_sid[targets].unsqueeze(1)).mean()


def _sid_code_ce(model: CobraRecommender, query: torch.Tensor, targets: torch.Tensor,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Sum over levels of the code cross entropies; targets (M,) item ids."""
    return code_ce_loss(model.sid_logits_codes(query), model.vocab_codes[model.item_sid[targets]])


SID_LOSSES: dict[str, Callable[[CobraRecommender, torch.Tensor, torch.Tensor, torch.Generator | None],
                               torch.Tensor]] = {
    "full-softmax": _sid_full_softmax,
    "sampled-softmax": _sid_sampled_softmax,
    "code-ce": _sid_code_ce,
}
