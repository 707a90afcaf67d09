"""The kinds of model a run can train, behind one training protocol.

Explained in chapter 06 (book/06_hstu.py); COBRA in chapters 07-09 (book/07_interleaving.py); TIGER
in the experiments chapter (book/10_experiments.py).

Every trainable model exposes the same two methods, so :mod:`cobra.train` has no per-model branches::

    training_loss(batch, generator=None) -> (loss () float32 tensor, stats dict[str, float])
    score(batch) -> (B, N + 1) float scores (column 0 is padding, ``-inf``)

:data:`MODELS` maps a run's ``kind`` to a :class:`ModelKind`: its frozen config class, a builder
``build(config, codes, text_vectors) -> nn.Module`` and what the builder needs:

================  ===========================================  =========================  ============
kind              model                                        needs SID codes            text vectors
================  ===========================================  =========================  ============
``sequential``    :class:`SequentialModel` (HSTU / SASRec)      SID embeddings only        no
``cobra``         :class:`cobra.cobra_model.CobraRecommender`  yes                        yes
``tiger``         :class:`cobra.tiger.TigerRecommender`        yes                        no
================  ===========================================  =========================  ============

:class:`SequentialModel` is :class:`cobra.models.SequentialRecommender` plus its next-item loss
(:data:`cobra.losses.LOSSES`, configured by the run's ``train.loss`` / ``num_negatives`` /
``temperature``); it adds no parameters, so its ``state_dict`` is the recommender's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from cobra.cobra_model import CobraConfig, CobraRecommender
from cobra.config import ConfigError
from cobra.losses import LOSSES, valid_positions
from cobra.models import ModelConfig, SequentialRecommender
from cobra.tiger import TigerConfig, TigerRecommender

if TYPE_CHECKING:
    from cobra.data import Batch


class Trainable(Protocol):
    """What :func:`cobra.train.fit` needs from a model (besides being an ``nn.Module`` with a ``config``)."""

    config: Any  # has .max_seq_len and .num_items

    def training_loss(self, batch: Batch, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def score(self, batch: Batch) -> torch.Tensor: ...  # (B, N + 1)


class SequentialModel(SequentialRecommender):
    """:class:`cobra.models.SequentialRecommender` with its training loss (the :class:`Trainable` protocol).

    Args:
        config: :class:`cobra.models.ModelConfig`.
        codes: (N, L) int64 item codes for SID embeddings, else None.
        loss: key of :data:`cobra.losses.LOSSES`.
        num_negatives: ``R`` (sampled softmax).
        temperature: logits are cosine / temperature.
    """

    def __init__(self, config: ModelConfig, codes: torch.Tensor | np.ndarray | None = None, *,
                 loss: str = "sampled_softmax", num_negatives: int = 128, temperature: float = 0.05) -> None:
        super().__init__(config, codes)
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
        self.loss_name, self.num_negatives, self.temperature = loss, num_negatives, temperature

    def training_loss(self, batch: Batch, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-item loss at every valid position of a training batch (ids / next_ids (B, T) int64).

        Returns:
            () float32 mean loss over the positions with a next item, and ``{}`` (no extra statistics).
        """
        hidden = self(batch)  # (B, T, D)
        query, positives = valid_positions(hidden, batch.next_ids)  # (M, D), (M,)
        emb = self.item_embedding
        loss = LOSSES[self.loss_name](query, positives, emb, num_negatives=self.num_negatives,
                                      temperature=self.temperature, generator=generator,
                                      num_items=emb.num_items)
        return loss, {}


# ------------------------------------------------------------------------------------------------ registry
Builder = Callable[[Any, Any, "np.ndarray | None", "np.ndarray | None"], nn.Module]


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes:
        config: its frozen config dataclass (a run's ``model`` section).
        build: ``build(model_config, train_config, codes (N, L+1) | None, text_vectors (N, Dt) | None)``.
        needs_codes: ``model_config -> bool``, whether the builder needs semantic-ID codes.
        needs_text: whether the builder needs the items' text vectors.
        label: ``model_config -> str``, the ``model`` field of results.
        decode_label: ``model_config -> str``, how ``score`` ranks items (the ``decode`` field of ``eval``).
        decodes: whether ``score`` takes a COBRA ``decode`` mode (``eval --decode``).
    """

    config: type
    build: Builder
    needs_codes: Callable[[Any], bool]
    needs_text: bool
    label: Callable[[Any], str]
    decode_label: Callable[[Any], str]
    decodes: bool = False


def _sequential_label(m: ModelConfig) -> str:
    if m.embedding == "id":
        return m.backbone
    return f"{m.backbone}+{m.embedding}" + (f"+{m.fusion}" if m.fusion else "")


def _build_sequential(m: ModelConfig, t: Any, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
    return SequentialModel(m, codes if m.embedding != "id" else None, loss=t.loss, num_negatives=t.num_negatives,
                           temperature=t.temperature)


def _build_cobra(m: CobraConfig, t: Any, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
    return CobraRecommender(m, codes, text)


def _build_tiger(m: TigerConfig, t: Any, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
    return TigerRecommender(m, codes)


MODELS: dict[str, ModelKind] = {
    "sequential": ModelKind(ModelConfig, _build_sequential, lambda m: m.embedding != "id", False,
                            _sequential_label, lambda m: "full"),
    "cobra": ModelKind(CobraConfig, _build_cobra, lambda m: True, True, lambda m: "cobra",
                       lambda m: m.decode.mode, decodes=True),
    "tiger": ModelKind(TigerConfig, _build_tiger, lambda m: True, False, lambda m: "tiger",
                       lambda m: "trie-beam"),
}


def model_kind(kind: str) -> ModelKind:
    """The :class:`ModelKind` of ``kind``, with a clear error for an unknown one."""
    try:
        return MODELS[kind]
    except KeyError:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {sorted(MODELS)}") from None
