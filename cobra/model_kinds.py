"""The kinds of model a run can train, behind one training protocol.

Explained in chapter 05 (book/05_hstu.py); COBRA in chapters 08-10 (book/08_interleaving.py); TIGER
in the experiments chapter (book/11_experiments.py).

Every trainable model exposes the same two methods, so :mod:`cobra.train` has no per-model branches::

    training_loss(batch, generator=None) -> (loss () float32 tensor, stats dict[str, float])
    score(batch) -> (B, N + 1) float scores (column 0 is padding, ``-inf``)

:data:`MODELS` maps a run's ``kind`` to a :class:`ModelKind`: its frozen config class, a builder
``build(config, codes, text_vectors) -> nn.Module`` and what the builder needs. A model's config holds
everything about the network *and its loss*; the run's ``train`` section (:class:`cobra.presets.TrainConfig`)
holds only the optimiser and the loop:

================  ===========================================  =========================  ============
kind              model                                        needs SID codes            text vectors
================  ===========================================  =========================  ============
``sequential``    :class:`SequentialModel` (HSTU / SASRec)      SID embeddings only        no
``cobra``         :class:`cobra.cobra_model.CobraRecommender`  yes                        yes
``tiger``         :class:`cobra.tiger.TigerRecommender`        yes                        no
================  ===========================================  =========================  ============

:class:`SequentialModel` is :class:`cobra.models.SequentialRecommender` plus its next-item loss
(:data:`cobra.losses.LOSSES`, configured by its config's ``loss`` / ``num_negatives`` / ``temperature``);
it adds no parameters, so its ``state_dict`` is the recommender's.
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
from cobra.hstu import BackboneConfig
from cobra.losses import LOSSES, valid_positions
from cobra.models import ModelConfig, SequentialRecommender
from cobra.tiger import TigerConfig, TigerRecommender

if TYPE_CHECKING:
    from cobra.data import Batch


class Trainable(Protocol):
    """What :func:`cobra.train.fit` needs from a model (besides being an ``nn.Module`` with a ``config``)."""

    config: BackboneConfig  # a ModelConfig, CobraConfig or TigerConfig: .max_seq_len, .num_items ...

    def training_loss(self, batch: Batch, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def score(self, batch: Batch) -> torch.Tensor: ...  # (B, N + 1)


class SequentialModel(SequentialRecommender):
    """:class:`cobra.models.SequentialRecommender` with its training loss (the :class:`Trainable` protocol).

    Args:
        config: :class:`cobra.models.ModelConfig`, its loss settings (``loss``, ``num_negatives``,
            ``temperature``) included.
        codes: (N, L) int64 item codes for SID embeddings, else None.
    """

    def __init__(self, config: ModelConfig, codes: torch.Tensor | np.ndarray | None = None) -> None:
        super().__init__(config, codes)

    def training_loss(self, batch: Batch, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-item loss at every valid position of a training batch (ids / next_ids (B, T) int64).

        Returns:
            () float32 mean loss over the positions with a next item, and ``{}`` (no extra statistics).
        """
        hidden = self(batch)  # (B, T, D)
        query, positives = valid_positions(hidden, batch.next_ids)  # (M, D), (M,)
        emb, c = self.item_embedding, self.config
        loss = LOSSES[c.loss](query, positives, emb, num_negatives=c.num_negatives, temperature=c.temperature,
                              generator=generator, num_items=emb.num_items)
        return loss, {}


# ------------------------------------------------------------------------------------------------ registry
Builder = Callable[[Any, "np.ndarray | None", "np.ndarray | None"], nn.Module]


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes:
        config: its frozen config dataclass (a run's ``model`` section).
        build: ``build(model_config, codes (N, L+1) int64 | None, text_vectors (N, Dt) float32 | None)``, a
            fresh ``nn.Module`` (weights drawn from the global torch RNG).
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


def _build_sequential(m: ModelConfig, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
    return SequentialModel(m, codes if m.embedding != "id" else None)


def _build_cobra(m: CobraConfig, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
    return CobraRecommender(m, codes, text)


def _build_tiger(m: TigerConfig, codes: np.ndarray | None, text: np.ndarray | None) -> nn.Module:
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
