"""Sequential recommenders as thin assemblies: item embedding + backbone + output item table.

Explained in chapter 05 (book/05_hstu.py); the SID embeddings in chapter 06 (book/06_prefixn.py).

A :class:`SequentialRecommender` embeds the ids of a right-padded batch with an
item embedding (:mod:`cobra.embeddings`: ID, PrefixN, ... optionally fused),
encodes them with a backbone (``BACKBONES``: :class:`cobra.hstu.HSTU` or
:class:`cobra.sasrec.SASRec`) and scores the next item by cosine similarity
between the hidden state and the same item embedding (input and output
tables are shared, as in the HSTU reference). ``score`` fits the evaluator's
``Recommender`` protocol. :class:`ModelConfig` also holds the next-item loss
settings, which :class:`cobra.model_kinds.SequentialModel` trains with.
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
from cobra.embeddings import EMBEDDING_KINDS, FUSIONS, ItemEmbedding, build_item_embedding
from cobra.hstu import BackboneConfig, build_hstu, next_timestamps, request_times
from cobra.losses import LOSSES
from cobra.sasrec import SASRec

if TYPE_CHECKING:  # the data module is only needed for the type of a batch
    from cobra.data import Batch


@dataclass(frozen=True)
class ModelConfig(BackboneConfig):
    """Everything needed to build a :class:`SequentialRecommender` and train it.

    The shared fields (``num_items``, ``dim``, ``num_blocks``, ``num_heads``, ``max_seq_len``, ``dropout`` and
    the HSTU-only ``attention_dim``, ``linear_dim``, ``num_time_buckets``, ``attn_norm``,
    ``use_position_bias``, ``use_time_bias``) are those of :class:`cobra.hstu.BackboneConfig`; here
    ``max_seq_len`` is also the backbone's length (one token per item).

    Attributes:
        backbone: key of ``BACKBONES`` (``hstu`` or ``sasrec``).
        embedding: ``id`` or a semantic-ID kind (``prefixN``, ``ngram``, ``rqsum``).
        fusion: ``None`` or a key of ``cobra.embeddings.FUSIONS`` (fuse the SID table with IDs).
        ffn_dim: SASRec feed-forward width (default ``4 * D``).
        sid_table_size: hash rows for ``prefixN`` / ``ngram``.
        ngram_sizes: n-gram lengths for ``ngram``.
        sid_levels: use only the first ``sid_levels`` code columns (default all).
        loss: next-item loss, a key of :data:`cobra.losses.LOSSES` (``sampled_softmax`` or ``full_softmax``).
        num_negatives: ``R`` uniform negatives per position (``sampled_softmax``; ignored by ``full_softmax``).
        temperature: logits are cosine / temperature.
    """

    backbone: str = "hstu"
    embedding: str = "id"
    fusion: str | None = None
    ffn_dim: int | None = None
    sid_table_size: int = 2**16
    ngram_sizes: tuple[int, ...] = (1, 2)
    sid_levels: int | None = None
    loss: str = "sampled_softmax"
    num_negatives: int = 128
    temperature: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "ngram_sizes", tuple(self.ngram_sizes))
        require_choice(self, "backbone", sorted(BACKBONES))
        require_choice(self, "embedding", EMBEDDING_KINDS)
        if self.fusion is not None and self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose one of {list(FUSIONS)} or None")
        super().__post_init__()
        require_choice(self, "loss", sorted(LOSSES))
        require_positive(self, ("num_negatives",))
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


def _build_sasrec(config: ModelConfig) -> nn.Module:
    return SASRec(
        dim=config.dim,
        num_blocks=config.num_blocks,
        num_heads=config.num_heads,
        max_seq_len=config.max_seq_len,
        dropout=config.dropout,
        ffn_dim=config.ffn_dim,
    )


BACKBONES: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "hstu": build_hstu,  # the builder every model's HSTU comes from
    "sasrec": _build_sasrec,
}


class SequentialRecommender(nn.Module):
    """Item embedding + backbone; scores items by cosine with the shared item table.

    Args:
        config: :class:`ModelConfig`.
        codes: (N, L) int64 item codes, required when ``config.embedding`` is a SID kind.

    Attributes:
        item_embedding: :class:`cobra.embeddings.ItemEmbedding`, ids (...) -> (..., D).
        backbone: ``HSTU`` or ``SASRec``.
    """

    def __init__(self, config: ModelConfig, codes: torch.Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        self.item_embedding: ItemEmbedding = build_item_embedding(
            config.embedding,
            config.num_items,
            config.dim,
            codes,
            config.fusion,
            table_size=config.sid_table_size,
            ngram_sizes=config.ngram_sizes,
            levels=config.sid_levels,
        )
        self.backbone = BACKBONES[config.backbone](config)

    def encode(
        self,
        ids: torch.Tensor,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor | None = None,
        query_timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states of a right-padded batch.

        Args:
            ids: (B, T) int64, 0 = padding.
            timestamps: (B, T) int64 seconds.
            lengths: (B,) int64 real items per row.
            mask: optional (B, T, T) or (1, T, T) bool attention mask (True = may attend).
            query_timestamps: optional (B, T) int64 query times (see :mod:`cobra.hstu`).

        Returns:
            (B, T, D) float, zero at padding positions.
        """
        x = self.item_embedding(ids)  # (B, T, D)
        return self.backbone(x, timestamps, lengths, mask, query_timestamps)

    def forward(
        self, batch: Batch, mask: torch.Tensor | None = None, query_timestamps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden states ``(B, T, D)`` of ``batch`` (uses ``batch.ids``, ``timestamps``, ``lengths``).

        ``query_timestamps`` defaults to the next items' times with ``batch.query_time`` at the last position
        (:func:`cobra.hstu.request_times`).
        """
        if query_timestamps is None:
            last = request_times(self.config, batch)
            if last is not None:
                query_timestamps = next_timestamps(batch.timestamps, batch.lengths, last)  # (B, T)
        return self.encode(batch.ids, batch.timestamps, batch.lengths, mask, query_timestamps)

    def item_vectors(self) -> torch.Tensor:
        """(N + 1, D) float output item table (row 0 is padding)."""
        return self.item_embedding.all_items()

    def last_hidden(self, batch: Batch) -> torch.Tensor:
        """(B, D) float hidden state at each row's last real position."""
        hidden = self(batch)  # (B, T, D)
        last = (batch.lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])  # (B, 1, D)
        return hidden.gather(1, last).squeeze(1)  # (B, D)

    @torch.no_grad()
    def score(self, batch: Batch) -> torch.Tensor:
        """Cosine scores of every item for the next step, ``(B, N + 1)`` float; column 0 is ``-inf``.

        Runs without gradients; call ``model.eval()`` first to switch dropout off.
        """
        query = F.normalize(self.last_hidden(batch).float(), dim=-1)  # (B, D)
        items = F.normalize(self.item_vectors().float(), dim=-1)  # (N+1, D)
        scores = query @ items.T  # (B, N+1)
        scores[:, 0] = float("-inf")
        return scores
