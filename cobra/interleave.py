"""Interleaving sparse and dense tokens: ``[SID_1, VID_1, SID_2, VID_2, ...]`` for COBRA.

Explained in chapter 08 (book/08_interleaving.py).

COBRA (Yang et al., 2025) feeds the backbone two tokens per item: the item's semantic ID (its
*sparse* token, here a PrefixN embedding of its codes) and its dense vector (its *VID*, here a
projection of its frozen text vector). For items ``x_0 .. x_{L-1}`` the sequence is::

    token      0       1       2       3      ...   2t      2t+1    ...
    kind       SID_0   VID_0   SID_1   VID_1  ...   SID_t   VID_t   ...
    type id    0       1       0       1      ...   0       1
    position   0       1       2       3      ...   2t      2t+1           (the token index)
    time       ts_0    ts_0    ts_1    ts_1   ...   ts_t    ts_t           (cloned per pair)

``(B, T, 2, D) -> (B, 2T, D)``; a row with ``L`` items has ``2L`` tokens (``2L - 1`` with
``drop_last_vid``, see below).

What each position predicts (the *targets*)
    * the hidden state at ``SID_t`` has seen ``SID_0 .. SID_t`` and ``VID_0 .. VID_{t-1}``; it
      predicts the dense vector ``VID_t`` of the *same* item (the VID loss, InfoNCE);
    * the hidden state at ``VID_t`` has seen the whole pair; it predicts the semantic ID
      ``SID_{t+1}`` of the *next* item (the SID loss).

    So generation alternates sparse then dense: first the coarse code of the next item, then,
    given that code, the precise vector that is searched among the items' VIDs.

The mask
    Plain causal attention over the interleaved order (:func:`interleaved_mask`): token ``i`` may
    attend to every token ``j <= i``. Hence ``VID_t`` sees ``SID_t`` (its own item's code: the
    VID is generated *given* the SID), ``SID_{t+1}`` sees ``VID_t``, and ``SID_t`` does **not**
    see ``VID_t`` (that is what it predicts).

Timestamps and the time bias
    Both tokens of a pair carry the item's timestamp (*cloned*), so the key-side gap inside a pair
    is zero. The HSTU time bias (:mod:`cobra.hstu`) measures ``query_time[i] - ts[j]`` where the
    query time is the time of what position ``i`` predicts, which is exactly the timestamp of the
    next token: :func:`interleaved_query_timestamps` applies :func:`cobra.hstu.next_timestamps`
    to the cloned token times, giving

    * at ``SID_t`` (predicts ``VID_t``): ``ts_t``, so the gap to its own ``SID_t`` key is **0**
      (the bucket of "the twin of what you are generating now") and to ``VID_{t-1}`` it is
      ``ts_t - ts_{t-1}``;
    * at ``VID_t`` (predicts ``SID_{t+1}``): ``ts_{t+1}``, the time of the next event, as in
      plain HSTU; at the last real token, the request time when it is given (``query_time``, see
      :mod:`cobra.hstu`), else its own time. Training and decoding end on an open SID whose item is the
      one being predicted: :class:`cobra.cobra_model.CobraRecommender` stamps it with the request time.

``drop_last_vid``
    Training and decoding both end on an *open* SID: the last item's SID token is in the input
    and its VID is what is predicted. With ``drop_last_vid=True`` the last real item contributes
    only its SID token (``2L - 1`` tokens); its VID slot becomes padding.

Helpers for the book: :func:`mask_for_plot` and :func:`time_gap_matrix` (heatmaps),
:func:`token_labels` (axis labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cobra.hstu import causal_mask, next_timestamps, valid_mask

SID_TYPE = 0
VID_TYPE = 1


def interleave_pairs(sid: torch.Tensor, vid: torch.Tensor) -> torch.Tensor:
    """Stack per-item pairs and flatten: ``[s_0, v_0, s_1, v_1, ...]``.

    Args:
        sid: (B, T, ...) per-item SID values (embeddings (B, T, D), ids or times (B, T)).
        vid: same shape as ``sid``.

    Returns:
        (B, 2T, ...) with ``out[:, 2t] = sid[:, t]`` and ``out[:, 2t + 1] = vid[:, t]``.
    """
    if sid.shape != vid.shape:
        raise ValueError(f"sid and vid must have the same shape, got {tuple(sid.shape)} and {tuple(vid.shape)}")
    B, T = sid.shape[:2]
    return torch.stack([sid, vid], dim=2).reshape(B, 2 * T, *sid.shape[2:])  # (B, T, 2, ...) -> (B, 2T, ...)


def token_types(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(2T,) int64 type ids ``[0, 1, 0, 1, ...]`` (SID = 0, VID = 1)."""
    return torch.arange(2 * T, device=device) % 2


def token_lengths(lengths: torch.Tensor, drop_last_vid: bool = False) -> torch.Tensor:
    """(B,) int64 tokens per row: ``2L`` (``2L - 1`` with ``drop_last_vid``; 0 stays 0)."""
    n = 2 * lengths
    return (n - 1).clamp(min=0) if drop_last_vid else n


def clone_timestamps(timestamps: torch.Tensor) -> torch.Tensor:
    """(B, T) item times -> (B, 2T) token times, each pair sharing its item's time."""
    return interleave_pairs(timestamps, timestamps)


def interleaved_query_timestamps(
    timestamps: torch.Tensor, lengths: torch.Tensor, drop_last_vid: bool = False,
    last: torch.Tensor | None = None,
) -> torch.Tensor:
    """Query time of every token for the HSTU time bias (see the module docstring).

    Args:
        timestamps: (B, T) int64 item times, right-padded.
        lengths: (B,) int64 items per row.
        drop_last_vid: whether the last item has only its SID token.
        last: optional (B,) int64 query time of the last real token (the request time).

    Returns:
        (B, 2T) int64: at ``SID_t`` the time ``ts_t``; at ``VID_t`` the time ``ts_{t+1}``; at the last
        real token (and on padding) ``last``, or that token's own time.
    """
    return next_timestamps(clone_timestamps(timestamps), token_lengths(lengths, drop_last_vid), last)


def interleaved_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(1, 2T, 2T) bool attention mask over the interleaved order: causal, True = may attend.

    ``VID_t`` (token ``2t + 1``) sees ``SID_t`` (token ``2t``); ``SID_{t+1}`` sees ``VID_t``; ``SID_t``
    does not see ``VID_t``. Key padding is added by the backbone from the token lengths.
    """
    return causal_mask(2 * T, device)


def interleave_targets(
    items: torch.Tensor,
    lengths: torch.Tensor,
    next_ids: torch.Tensor | None = None,
    drop_last_vid: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every token predicts, and which loss it carries.

    Args:
        items: (B, T) int64 item ids of the interleaved items, right-padded with 0.
        lengths: (B,) int64 items per row.
        next_ids: optional (B, T) int64 the item after each item (0 where unknown); it only adds
            the target of the last ``VID`` token (``next_ids[:, L-1]``), the others are read off ``items``.
        drop_last_vid: the last item has only its SID token (its VID slot is padding, no target).

    Returns:
        targets: (B, 2T) int64: at ``SID_t`` the item ``items[t]`` (its VID is predicted), at ``VID_t``
            the next item ``items[t + 1]`` (its SID is predicted); 0 where there is nothing to predict.
        sid_loss: (B, 2T) bool, positions that carry the SID loss (VID tokens with a target).
        vid_loss: (B, 2T) bool, positions that carry the VID loss (SID tokens with a target).
    """
    B, T = items.shape
    real = valid_mask(lengths, T)  # (B, T)
    at_sid = items.masked_fill(~real, 0)  # (B, T) SID_t -> VID of item t
    nxt = torch.cat([items[:, 1:], items.new_zeros(B, 1)], dim=1)  # (B, T) item t + 1
    at_vid = nxt.masked_fill(~valid_mask(lengths - 1, T), 0)  # (B, T) VID_t -> SID of item t + 1, t < L - 1
    if next_ids is not None:
        last = (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
        is_last = torch.arange(T, device=items.device).unsqueeze(0) == last  # (B, T)
        at_vid = torch.where(is_last & real, next_ids, at_vid)
    if drop_last_vid:
        at_vid = at_vid.masked_fill(~valid_mask(lengths - 1, T), 0)
    targets = interleave_pairs(at_sid, at_vid)  # (B, 2T)
    types = token_types(T, items.device).unsqueeze(0)  # (1, 2T)
    has = targets != 0
    return targets, has & (types == VID_TYPE), has & (types == SID_TYPE)


@dataclass
class Interleaved:
    """An interleaved batch ready for the backbone.

    Attributes:
        tokens: (B, 2T, D) float token vectors (type embedding added), zero on padding tokens.
        types: (2T,) int64 type ids (SID = 0, VID = 1).
        positions: (2T,) int64 token index (the backbone adds its own positional embedding by it).
        timestamps: (B, 2T) int64 cloned item times.
        query_timestamps: (B, 2T) int64 time of what each token predicts (see the module docstring).
        lengths: (B,) int64 real tokens per row.
        mask: (1, 2T, 2T) bool causal mask (True = may attend).
    """

    tokens: torch.Tensor
    types: torch.Tensor
    positions: torch.Tensor
    timestamps: torch.Tensor
    query_timestamps: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor


class Interleaver(nn.Module):
    """Builds :class:`Interleaved` batches; owns the type embedding (2 rows: SID, VID).

    Args:
        dim: ``D``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.type_embedding = nn.Embedding(2, dim)
        nn.init.normal_(self.type_embedding.weight, 0.0, 0.02)

    def forward(
        self,
        sid: torch.Tensor,
        vid: torch.Tensor,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        drop_last_vid: bool = False,
        query_time: torch.Tensor | None = None,
    ) -> Interleaved:
        """Interleave per-item SID and VID vectors.

        Args:
            sid: (B, T, D) float SID token vectors of the items.
            vid: (B, T, D) float VID token vectors of the items.
            timestamps: (B, T) int64 item times.
            lengths: (B,) int64 items per row.
            drop_last_vid: leave out the last item's VID token (an open SID at the end).
            query_time: optional (B,) int64 query time of the last real token (the request time).

        Returns:
            :class:`Interleaved` with ``2T`` token slots.
        """
        B, T, D = sid.shape
        types = token_types(T, sid.device)  # (2T,)
        tok_len = token_lengths(lengths, drop_last_vid)  # (B,)
        tokens = interleave_pairs(sid, vid) + self.type_embedding(types).unsqueeze(0)  # (B, 2T, D)
        tokens = tokens * valid_mask(tok_len, 2 * T).unsqueeze(-1).to(tokens.dtype)
        return Interleaved(
            tokens=tokens,
            types=types,
            positions=torch.arange(2 * T, device=sid.device),
            timestamps=clone_timestamps(timestamps),
            query_timestamps=interleaved_query_timestamps(timestamps, lengths, drop_last_vid, query_time),
            lengths=tok_len,
            mask=interleaved_mask(T, sid.device),
        )


# ------------------------------------------------------------------------------------------------ book helpers
def token_labels(T: int) -> list[str]:
    """Axis labels ``["S1", "V1", "S2", "V2", ...]`` (1-based steps, as in the articles)."""
    return [f"{'SV'[i % 2]}{i // 2 + 1}" for i in range(2 * T)]


def mask_for_plot(T: int) -> torch.Tensor:
    """(2T, 2T) bool interleaved attention mask of ``T`` items (row = query token, column = key token)."""
    return interleaved_mask(T)[0]


def time_gap_matrix(timestamps: torch.Tensor, drop_last_vid: bool = False) -> torch.Tensor:
    """The gaps the HSTU time bias sees, ``query_time[i] - time[j]``, for one or many rows of items.

    Args:
        timestamps: (T,) or (B, T) int64 item times of real items (no padding).
        drop_last_vid: as in :class:`Interleaver` (the last VID slot is then padding).

    Returns:
        (2T, 2T) or (B, 2T, 2T) int64 seconds; bucket them with :func:`cobra.hstu.time_bucket`.
        Entries above the diagonal are never used (masked); the diagonal of each ``SID`` row and the
        ``(SID_t, SID_t)``/``(SID_t, VID_{t-1})`` structure show the zero gap inside a pair.
    """
    single = timestamps.dim() == 1
    ts = timestamps.unsqueeze(0) if single else timestamps  # (B, T)
    lengths = torch.full((ts.shape[0],), ts.shape[1], dtype=torch.int64, device=ts.device)
    query = interleaved_query_timestamps(ts, lengths, drop_last_vid)  # (B, 2T)
    gaps = query.unsqueeze(2) - clone_timestamps(ts).unsqueeze(1)  # (B, 2T, 2T)
    return gaps[0] if single else gaps
