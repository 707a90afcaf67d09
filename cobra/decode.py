"""Decoding a COBRA model: exact top-k over item VIDs, COBRA's four modes and the ``sparse`` ablation.

Explained in chapter 10 (book/10_decoding.py).

Every mode runs the same two steps, batched over users (no per-user Python loops):

1. **Sparse step.** The hidden state at the history's last ``VID`` token predicts the next semantic
   ID: ``log p_sid`` over the model's SID vocabulary (``V`` distinct code tuples; ``V = N`` when the
   codes carry a uniqueness column).
2. **Dense step.** One or more SID vectors are appended to the history as an open ``SID`` token; the
   hidden state there is the VID query ``q``; items are scored by ``cos(q, VID_i)`` against every
   item's VID (exact search: the catalogue has at most a few tens of thousands of items, and one
   ``(B, D) x (D, N)`` product is faster than building an ANN index).

Modes (``DECODERS``):

``direct``   the top-1 SID is appended; full cosine scores ``(B, N + 1)``.
``neighbor`` the top-1 SID is replaced by its nearest *other* SID (cosine in SID-embedding space)
             before it is appended: robustness when the top-1 code is unstable or collides.
``soft``     the appended vector is ``sum_k w_k e_k`` over the top-``k`` SIDs with
             ``w = softmax(log p_sid / tau_soft)`` (a soft, probability-weighted code).
``beam``     the top-``M`` SIDs each give a VID query (the ``M`` beams form a ``(B * M)`` batch); each
             query retrieves its top-``n_b`` items (history removed, see below); the ``M x n_b``
             candidates are scored by a fusion (``BEAM_FUSIONS``) and an item retrieved by several
             beams keeps its best score:

             * ``prod``:    ``p_sid^alpha * p_vid^(1 - alpha)``, returned as its logarithm
               ``alpha log p_sid + (1 - alpha) log p_vid`` (same ranking);
             * ``sum``:     ``alpha p_sid + (1 - alpha) p_vid``;
             * ``softmax``: ``softmax_M(tau_beam * log p_sid) * softmax_{M x n_b}(psi * cos)`` (COBRA's
               BeamFusion; tau_beam = 0.9, psi = 16 by default), normalised over the user's beams and
               over all of the user's ``M x n_b`` candidates respectively;

             where ``p_vid = softmax(cos / tau)`` over the catalogue (the model's VID distribution at
             the training temperature ``tau``).

One more mode is an ablation, not one of COBRA's: ``sparse`` skips the dense step and scores every
item by the log-probability of its own SID (items that share a SID tie). With a uniqueness column
(``V = N``) that is the model's full next-item distribution from its sparse head alone; chapter 11
(book/11_experiments.py) uses it to show where COBRA's quality comes from.

Filtering
    The full-score modes return scores for every item; the evaluator removes the user's whole history
    and never the target. ``beam`` truncates to ``M x n_b`` candidates, so it removes the same items
    *before* taking each beam's top-``n_b`` (``filter_history``), so seen items do not waste candidate
    slots: ``batch.exclude``, which :func:`cobra.data.eval_batches` sets to the set the ranking removes (the whole
    history, not only the last ``max_seq_len`` events, the target kept), or the items of ``batch.ids``
    for a batch without it (:meth:`cobra.data.Batch.excluded`).

Items outside the candidate set
    ``beam`` gives items that no beam retrieved the score ``-inf``. The evaluator ranks a target
    with ``-inf`` as tied with every other non-retrieved item and takes the expected metric under
    random tie-breaking (:func:`cobra.metrics.rank_metrics`), i.e. it lands on average in the middle
    of the tail, behind all ``<= M x n_b`` retrieved items. Set ``beam_items >= 200`` so that each
    beam alone fills the longest cut-off (``@200``).

Latency: item VIDs and SID vectors are computed and normalised once per batch; the backbone runs
twice per batch (the history, then the history plus the appended SID token for the ``B * M`` rows),
in row chunks of the model's ``eval_chunk`` to bound memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

from cobra.config import ConfigError, require_choice, require_positive

if TYPE_CHECKING:
    from cobra.data import Batch


@dataclass(frozen=True)
class DecodeConfig:
    """How a COBRA model turns a history into item scores.

    Attributes:
        mode: key of :data:`DECODERS` (``direct``, ``neighbor``, ``soft``, ``beam``, or the ``sparse`` ablation).
        soft_top_k: ``soft``: number of SIDs mixed.
        soft_temperature: ``soft``: ``tau_soft`` in ``softmax(log p_sid / tau_soft)``.
        beam_width: ``beam``: ``M`` SIDs kept.
        beam_items: ``beam``: ``n_b`` items retrieved per SID beam.
        fusion: ``beam``: key of :data:`BEAM_FUSIONS` (``prod``, ``sum``, ``softmax``).
        alpha: ``beam`` with ``prod``/``sum``: weight of the SID term.
        tau: ``beam`` with ``softmax``: ``tau_beam``, the temperature of the beam (SID) term.
        psi: ``beam`` with ``softmax``: temperature of the cosine term.
        filter_history: ``beam``: remove the history (:meth:`cobra.data.Batch.excluded`) before each beam's
            top-``n_b``.
    """

    mode: str = "direct"
    soft_top_k: int = 5
    soft_temperature: float = 0.5
    beam_width: int = 4
    beam_items: int = 200
    fusion: str = "softmax"
    alpha: float = 0.5
    tau: float = 0.9
    psi: float = 16.0
    filter_history: bool = True

    def __post_init__(self) -> None:
        require_choice(self, "mode", sorted(DECODERS), "decode mode")
        require_choice(self, "fusion", sorted(BEAM_FUSIONS), "beam fusion")
        require_positive(self, ("soft_top_k", "beam_width", "beam_items"))
        if self.soft_temperature <= 0:
            raise ConfigError(f"soft_temperature must be > 0, got {self.soft_temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")


class CobraLike(Protocol):
    """What the decoders need from a model (:class:`cobra.cobra_model.CobraRecommender` provides it)."""

    config: Any  # has .temperature and .num_items

    def sid_state(self, batch: Batch) -> torch.Tensor: ...  # (B, D) hidden at the last VID token

    def sid_log_probs(self, hidden: torch.Tensor) -> torch.Tensor: ...  # (..., D) -> (..., V)

    def sid_vocab_vectors(self) -> torch.Tensor: ...  # (V, D) SID input vector of every vocabulary entry

    def vid_queries(self, batch: Batch, sid_inputs: torch.Tensor) -> torch.Tensor: ...  # (B, M, D) -> (B, M, D)

    def item_vid_vectors(self) -> torch.Tensor: ...  # (N + 1, D)

    item_sid: torch.Tensor  # (N + 1,) int64 vocabulary index of each item's SID (-1 for padding)


# ---------------------------------------------------------------------------------------------- exact search
def vid_scores(query: torch.Tensor, item_vectors: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine of every item with every query.

    Args:
        query: (..., D) float VID queries.
        item_vectors: (N + 1, D) float item VIDs (row 0 = padding).
        exclude: optional bool mask broadcastable to (..., N + 1), True = set to ``-inf``.

    Returns:
        (..., N + 1) float32 cosines; column 0 and excluded items are ``-inf``.
    """
    q = F.normalize(query.float(), dim=-1)  # (..., D)
    items = F.normalize(item_vectors.float(), dim=-1)  # (N+1, D)
    scores = q @ items.T  # (..., N+1)
    scores[..., 0] = float("-inf")
    if exclude is not None:
        scores = scores.masked_fill(exclude, float("-inf"))
    return scores


def topk_items(
    query: torch.Tensor, item_vectors: torch.Tensor, exclude: torch.Tensor | None = None, k: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` items by cosine.

    Args:
        query: (B, D) float. item_vectors: (N + 1, D) float. exclude: (B, N + 1) bool or None.
        k: items per row (clamped to ``N``).

    Returns:
        scores (B, k) float32 descending and ids (B, k) int64 in ``1..N`` (``-inf`` scores when fewer than
        ``k`` items are left after exclusion).
    """
    scores = vid_scores(query, item_vectors, exclude)[:, 1:]  # (B, N), column c = item c + 1
    top = scores.topk(min(k, scores.shape[1]), dim=-1)  # (B, k)
    return top.values, top.indices + 1


# ------------------------------------------------------------------------------------------------- the modes
def _full_scores(model: CobraLike, batch: Batch, sid_inputs: torch.Tensor) -> torch.Tensor:
    """(B, 1, D) appended SID vectors -> (B, N + 1) cosine scores of the resulting VID queries."""
    query = model.vid_queries(batch, sid_inputs)[:, 0]  # (B, D)
    return vid_scores(query, model.item_vid_vectors())  # (B, N+1)


def decode_direct(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """Top-1 SID -> VID query -> cosine with every item. Returns (B, N + 1) float32."""
    log_p = model.sid_log_probs(model.sid_state(batch))  # (B, V)
    best = log_p.argmax(dim=-1)  # (B,)
    return _full_scores(model, batch, model.sid_vocab_vectors()[best].unsqueeze(1))


def nearest_other(vectors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Nearest other row by cosine: (V, D) float, (B,) int64 -> (B,) int64 (never ``index`` itself)."""
    v = F.normalize(vectors.float(), dim=-1)  # (V, D)
    sims = v[index] @ v.T  # (B, V)
    sims.scatter_(1, index.unsqueeze(1), float("-inf"))
    return sims.argmax(dim=-1)


def decode_neighbor(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """Top-1 SID replaced by its nearest other SID -> VID query -> cosine. Returns (B, N + 1)."""
    log_p = model.sid_log_probs(model.sid_state(batch))  # (B, V)
    vocab = model.sid_vocab_vectors()  # (V, D)
    if vocab.shape[0] < 2:
        raise ValueError("neighbor decoding needs at least two distinct semantic IDs")
    neighbour = nearest_other(vocab, log_p.argmax(dim=-1))  # (B,)
    return _full_scores(model, batch, vocab[neighbour].unsqueeze(1))


def decode_soft(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """Softmax-weighted mix of the top-k SID vectors -> VID query -> cosine. Returns (B, N + 1)."""
    log_p = model.sid_log_probs(model.sid_state(batch))  # (B, V)
    vocab = model.sid_vocab_vectors()  # (V, D)
    top = log_p.topk(min(config.soft_top_k, log_p.shape[-1]), dim=-1)  # (B, k)
    weights = torch.softmax(top.values / config.soft_temperature, dim=-1)  # (B, k)
    mixed = (weights.unsqueeze(-1) * vocab[top.indices]).sum(dim=1)  # (B, D)
    return _full_scores(model, batch, mixed.unsqueeze(1))


def _fuse_prod(sid_lp: torch.Tensor, cos: torch.Tensor, vid_lp: torch.Tensor, config: DecodeConfig) -> torch.Tensor:
    """``log(p_sid^a p_vid^(1-a))``; sid_lp (B, M), cos / vid_lp (B, M, N) -> (B, M, N)."""
    return config.alpha * sid_lp.unsqueeze(-1) + (1.0 - config.alpha) * vid_lp


def _fuse_sum(sid_lp: torch.Tensor, cos: torch.Tensor, vid_lp: torch.Tensor, config: DecodeConfig) -> torch.Tensor:
    """``a p_sid + (1 - a) p_vid``; shapes as :func:`_fuse_prod`."""
    return config.alpha * sid_lp.exp().unsqueeze(-1) + (1.0 - config.alpha) * vid_lp.exp()


def _fuse_softmax(sid_lp: torch.Tensor, cos: torch.Tensor, vid_lp: torch.Tensor, config: DecodeConfig
                  ) -> torch.Tensor:
    """COBRA's BeamFusion ``softmax_M(tau log p_sid) * softmax_{MxN}(psi cos)``; shapes as :func:`_fuse_prod`."""
    B, M, N = cos.shape
    beam = torch.softmax(config.tau * sid_lp, dim=-1)  # (B, M)
    dense = torch.softmax(config.psi * cos.reshape(B, M * N), dim=-1).view(B, M, N)  # (B, M, N)
    return beam.unsqueeze(-1) * dense


BEAM_FUSIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DecodeConfig], torch.Tensor]] = {
    "prod": _fuse_prod,
    "sum": _fuse_sum,
    "softmax": _fuse_softmax,
}


def decode_beam(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """Top-M SIDs x top-n_b items each, fused (``config.fusion``). Returns (B, N + 1), ``-inf`` outside the
    candidates."""
    log_p = model.sid_log_probs(model.sid_state(batch))  # (B, V)
    vocab = model.sid_vocab_vectors()  # (V, D)
    sid = log_p.topk(min(config.beam_width, log_p.shape[-1]), dim=-1)  # (B, M)
    queries = model.vid_queries(batch, vocab[sid.indices])  # (B, M, D)
    items = model.item_vid_vectors()  # (N+1, D)
    num_items = items.shape[0] - 1
    exclude = batch.excluded(num_items).unsqueeze(1) if config.filter_history else None  # (B, 1, N+1)
    cos = vid_scores(queries, items, exclude)  # (B, M, N+1)
    vid_lp = torch.log_softmax(cos / model.config.temperature, dim=-1)  # (B, M, N+1), -inf where excluded
    top = cos.topk(min(config.beam_items, num_items), dim=-1)  # (B, M, n)
    fused = BEAM_FUSIONS[config.fusion](sid.values, top.values, vid_lp.gather(-1, top.indices), config)
    fused = fused.masked_fill(~torch.isfinite(top.values), float("-inf"))  # excluded items stay out
    B = fused.shape[0]
    scores = torch.full((B, num_items + 1), float("-inf"), device=fused.device)  # (B, N+1)
    scores.scatter_reduce_(1, top.indices.reshape(B, -1), fused.reshape(B, -1).float(), reduce="amax")
    scores[:, 0] = float("-inf")
    return scores


def decode_sparse(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """The sparse head alone: each item scored by ``log p_sid`` of its own SID. Returns (B, N + 1) float32."""
    log_p = model.sid_log_probs(model.sid_state(batch))  # (B, V)
    scores = log_p[:, model.item_sid.clamp(min=0)]  # (B, N+1)
    scores[:, 0] = float("-inf")
    return scores


DECODERS: dict[str, Callable[[CobraLike, Batch, DecodeConfig], torch.Tensor]] = {
    "direct": decode_direct,
    "neighbor": decode_neighbor,
    "soft": decode_soft,
    "beam": decode_beam,
    "sparse": decode_sparse,
}
COBRA_MODES = ("direct", "neighbor", "soft", "beam")  # COBRA's own; ``sparse`` is the ablation


def resolve_decode(decode: DecodeConfig | str | None, default: DecodeConfig) -> DecodeConfig:
    """``None`` -> ``default``; a mode name -> ``default`` with that mode; a :class:`DecodeConfig` as is."""
    if decode is None:
        return default
    if isinstance(decode, str):
        if decode not in DECODERS:
            raise ConfigError(f"unknown decode mode {decode!r}; choose one of {sorted(DECODERS)}")
        return DecodeConfig(**{**default.__dict__, "mode": decode})
    return decode


@torch.no_grad()
def decode(model: CobraLike, batch: Batch, config: DecodeConfig) -> torch.Tensor:
    """Scores (B, N + 1) float32 of ``batch`` under ``config.mode``; column 0 is ``-inf``."""
    return DECODERS[config.mode](model, batch, config)
