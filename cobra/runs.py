"""The run directory: what :func:`cobra.train.fit` writes, and how a model is built and reloaded from it.

Explained in chapter 05 (book/05_hstu.py), where the first runs are trained and reloaded with :func:`load_run`.

A run directory::

    out_dir/
        config.json     the RunConfig (reload with cobra.presets.load_run_config)
        last.pt         checkpoint after every epoch: model, optimiser, scheduler, scaler, RNG states,
                        epoch, step, best metric, early-stop counter (written atomically)
        best.pt         weights with the best validation NDCG@10 so far
        metrics.jsonl   one line per epoch: epoch, step, loss, valid metrics, seconds, tokens_per_second
        result.json     the final test metrics of best.pt (what ``fit`` returns)
        sid_codes.npz   the semantic IDs, (N, L + 1) int64, for models with SID embeddings
        .cobra-run      marks the directory as a run (cobra version, creation time): fit refuses to write
                        into a non-empty directory without it, and only ever removes the files above

Here: the checkpoint files (:func:`save_checkpoint` / :func:`load_checkpoint` / :func:`load_weights`, read with
``torch.load(weights_only=True)``), the run's codes (:func:`save_run_codes` / :func:`load_run_codes`), the
loop counters (:class:`TrainState`) and the epoch log (:class:`MetricsLog`), the ownership marker
(:data:`RUN_MARKER`, :func:`run_dir_problem`, :func:`claim_run_dir`), the check that a resumed run has the
same settings (:func:`check_resumable`), and the model builder (:func:`build_model`, which sizes the item
tables from the data) with its inverse :func:`load_run`. Text vectors (COBRA's VID tower) are not stored in
the run: they are re-derived from the embedding cache (:func:`cobra.inputs.item_text_vectors`) and checked
against the fingerprint in ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cobra.config import ConfigError, atomic_write, data_home
from cobra.data import LeaveOneOut, load_split
from cobra.inputs import check_text_vectors, item_text_vectors
from cobra.model_kinds import MODELS
from cobra.presets import RunConfig, load_run_config

CHECKPOINT_VERSION = 1
RUN_MARKER = ".cobra-run"  # written by fit into every run directory: the directory is a run, fit may clear it
# Everything fit writes into a run directory: the only names it ever removes (when a run starts over).
RUN_FILES = frozenset({"config.json", "last.pt", "best.pt", "metrics.jsonl", "result.json", "sid_codes.npz",
                       "tensorboard", RUN_MARKER})
# Keys of a run's config that may change when a run is resumed (they do not change what was trained).
RESUMABLE_KEYS = {"epochs", "patience", "eval_batch_size", "compile", "device", "num_threads"}


# ------------------------------------------------------------------------------------------------ model
def with_num_items(config: RunConfig, num_items: int) -> RunConfig:
    """``config`` with ``model.num_items = num_items`` (presets hold the placeholder ``NUM_ITEMS_FROM_DATA``)."""
    return config.replace(model=config.model.replace(num_items=num_items))


def build_model(config: RunConfig, codes: np.ndarray | None = None, text_vectors: np.ndarray | None = None, *,
                num_items: int | None = None) -> nn.Module:
    """The network of ``config``, built by its kind (:data:`cobra.model_kinds.MODELS`).

    Args:
        config: the run.
        codes: (N, L + 1) int64 semantic IDs, required when ``config.uses_sids``.
        text_vectors: (N, Dt) float32 item text vectors, required when ``config.uses_text``.
        num_items: the dataset's item count ``N`` (e.g. ``split.num_items``): the item tables are sized from
            it instead of ``config.model.num_items`` (a preset's placeholder). Leave it out for a config that
            already holds the dataset's (a run's ``config.json``).

    Returns:
        The model (``nn.Module`` with the :class:`cobra.model_kinds.Trainable` methods), fresh weights drawn from
        the global torch RNG; its ``config`` is ``config.model`` with ``num_items`` set, loss settings included.
    """
    if num_items is not None:
        config = with_num_items(config, num_items)
    if config.uses_sids and codes is None:
        raise ConfigError(f"a {config.kind!r} model ({MODELS[config.kind].label(config.model)}) needs semantic-ID "
                          "codes; fit them with cobra.sid or use a run directory that holds sid_codes.npz")
    if config.uses_text and text_vectors is None:
        raise ConfigError(f"a {config.kind!r} model needs item text vectors; compute them with "
                          f"cobra.text.embed_items({config.dataset!r}, {config.encoder!r})")
    return MODELS[config.kind].build(config.model, codes if config.uses_sids else None,
                                     text_vectors if config.uses_text else None)


# ------------------------------------------------------------------------------------------ checkpoints
def _write_codes(path: Path, codes: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, codes=np.asarray(codes, dtype=np.int64))


def save_run_codes(path: str | Path, codes: np.ndarray) -> None:
    """Write (N, L + 1) int64 ``codes`` to a run's ``sid_codes.npz`` (member ``codes``), atomically."""
    atomic_write(Path(path), lambda tmp: _write_codes(tmp, codes))


def load_run_codes(path: str | Path, config: RunConfig) -> np.ndarray:
    """A run's ``sid_codes.npz``: (N, L + 1) int64 codes, checked against ``config``.

    The file is read whole (each member's CRC-32 checked); N must be ``config.model.num_items``, level
    codes must lie in ``[0, config.sid_codes)`` and uniqueness codes in ``[0, N)``.

    Raises:
        SIDError: missing, truncated or damaged file, wrong row count or codes out of range; the message
            names the file (the CLI prints it as one ``error:`` line).
    """
    from cobra.sid import read_codes

    return read_codes(path, codes_per_level=config.sid_codes, num_items=config.model.num_items,
                      remedy="restore it from a copy, or retrain the run (a new --out)")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` atomically: a crash while writing leaves the previous file intact."""
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a readable error for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; train first (python -m cobra train ... --out DIR)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        # Not torch's own message: it advises weights_only=False, which would run code from a file we cannot read.
        raise ConfigError(f"checkpoint {path} is damaged and cannot be read ({type(err).__name__}); restore it from "
                          f"a copy, or start the run over: delete {path.parent / 'last.pt'} and run the same train "
                          "command") from None


def load_weights(model: nn.Module, checkpoint: dict[str, Any], path: Path, run_dir: Path) -> None:
    """``model.load_state_dict(checkpoint["model"])``, refusing weights of another shape with a readable error."""
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        lines = [ln.strip() for ln in str(err).strip().splitlines()] or [type(err).__name__]
        first = lines[min(1, len(lines) - 1)].rstrip(".")  # torch: a heading, then one line per mismatch
        raise ConfigError(
            f"{path} does not fit the model that {run_dir / 'config.json'} describes ({first}); was config.json "
            "edited after training? Restore its model settings, or train a new run (a new --out)"
        ) from None


@dataclass
class TrainState:
    """Loop counters stored in every checkpoint.

    Attributes:
        epoch: epochs completed.
        step: optimiser steps taken.
        best_metric: best validation NDCG@10 so far (-1 before the first evaluation).
        best_epoch: the epoch (1-based) that reached it.
        bad_evals: evaluations since the last improvement (early stopping).
        finished: the run is over (all epochs, or stopped early).
        seconds: wall-clock seconds spent in fit so far (training and evaluation, over all calls).
        train_seconds: seconds spent in training steps only.
        tokens: real (non-padding) input positions trained on, summed over ranks.
    """

    epoch: int = 0
    step: int = 0
    best_metric: float = -1.0
    best_epoch: int = 0
    bad_evals: int = 0
    finished: bool = False
    seconds: float = 0.0
    train_seconds: float = 0.0
    tokens: int = 0


# ----------------------------------------------------------------------------------------------- logging
class MetricsLog:
    """``metrics.jsonl`` (one JSON object per epoch) plus TensorBoard scalars when tensorboard is installed."""

    def __init__(self, out_dir: Path, keep_epochs: int) -> None:
        self.path = out_dir / "metrics.jsonl"
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        kept = [ln for ln in lines if self._epoch(ln) <= keep_epochs]
        self.path.write_text("".join(ln + "\n" for ln in kept))  # drop epochs the checkpoint does not have
        self.writer = None
        with contextlib.suppress(Exception):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    @staticmethod
    def _epoch(line: str) -> float:
        """Epoch of a log line; a torn or empty line (a crash while appending) counts as never written."""
        try:
            return json.loads(line)["epoch"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return math.inf

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ------------------------------------------------------------------------------------------- ownership
def validation_curve(run_dir: str | Path) -> list[dict[str, float]]:
    """Per-epoch ``{"epoch", "valid_ndcg@10", "seconds", "loss", ...}`` of a run, from its ``metrics.jsonl``.

    ``seconds`` is the wall time of the run up to the end of that epoch (training and validation);
    ``loss`` is the epoch's mean training loss, and a COBRA run adds its two parts ``train_loss_sid``
    and ``train_loss_vid``. Epochs without a validation (``eval_every > 1``) are skipped.
    """
    path = Path(run_dir) / "metrics.jsonl"
    curve, elapsed = [], 0.0
    for line in path.read_text().splitlines() if path.is_file() else []:
        record = json.loads(line)
        elapsed += float(record.get("seconds", 0.0))
        if "valid_ndcg@10" in record:
            point = {"epoch": int(record["epoch"]), "valid_ndcg@10": float(record["valid_ndcg@10"]),
                     "seconds": round(elapsed, 3)}
            point.update({k: float(record[k]) for k in ("loss", "train_loss_sid", "train_loss_vid") if k in record})
            curve.append(point)
    return curve


def default_run_dir(preset: str) -> Path:
    """``data_home()/runs/<preset>-<YYYYmmdd-HHMMSS>``."""
    return data_home() / "runs" / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_dir_problem(out_dir: str | Path) -> str | None:
    """Why :func:`cobra.train.fit` must not write into ``out_dir`` (a message), or None when it may.

    It may when ``out_dir`` does not exist yet, is an empty directory, holds the :data:`RUN_MARKER` that ``fit``
    writes into every run directory, or is a run written before that marker existed (a readable
    ``config.json`` and nothing but files ``fit`` writes). Anything else is someone else's directory.
    """
    out_dir = Path(out_dir)
    for path in (out_dir, *out_dir.parents):
        if path.exists():
            if not path.is_dir():
                return (f"{path} is a file, not a directory; --out takes a run directory (a new or empty one, or "
                        "one that python -m cobra train wrote)")
            break
    if not out_dir.is_dir() or (out_dir / RUN_MARKER).is_file():
        return None
    names = sorted(p.name for p in out_dir.iterdir())
    if not names:
        return None
    foreign = [n for n in names if n not in RUN_FILES and not (n.startswith(".") and n.endswith(".tmp"))]
    if not foreign:
        with contextlib.suppress(Exception):  # a run from before the marker: adopt it
            load_run_config(out_dir)
            return None
    shown = ", ".join((foreign or names)[:3]) + (", ..." if len(foreign or names) > 3 else "")
    return (f"{out_dir} is not empty ({shown}) and is not a run directory of python -m cobra train (it has no "
            f"{RUN_MARKER} file); train into a new or empty directory (another --out)")


def claim_run_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and mark it as a run directory (:data:`RUN_MARKER`: cobra version, creation time)."""
    from cobra import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / RUN_MARKER
    if not marker.is_file():
        marker.write_text(json.dumps({"cobra": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")


def check_resumable(saved: RunConfig, config: RunConfig, out_dir: Path) -> None:
    """Refuse to resume the run ``saved`` in ``out_dir`` with ``config`` unless only :data:`RESUMABLE_KEYS` differ.

    Raises:
        ConfigError: the text vectors' fingerprint or a setting that changes what is trained differs.
    """
    if saved.text_vectors is not None and saved.text_vectors != config.text_vectors:
        raise ConfigError(f"{out_dir} was trained with text vectors {saved.text_vectors} but they are now "
                          f"{config.text_vectors} (the embedding cache changed); train into a new --out, or delete "
                          f"{out_dir} to start over there")
    a, b = saved.to_dict(), config.to_dict()
    a["model"]["num_items"] = b["model"]["num_items"]
    diff = [f"{s}.{k}" for s in ("model", "train") for k in a[s] if a[s][k] != b[s][k] and k not in RESUMABLE_KEYS]
    diff += [k for k in a if not isinstance(a[k], dict) and a[k] != b[k]]
    if diff:
        raise ConfigError(
            f"{out_dir} holds a run with a different config ({', '.join(diff)}); resume it with the same "
            f"settings, train into a new --out, or delete {out_dir} to start over there"
        )


# ----------------------------------------------------------------------------------------------- reload
def load_run(run_dir: str | Path, checkpoint: str = "best.pt", *, split: LeaveOneOut | None = None,
             text_vectors: np.ndarray | None = None) -> tuple[nn.Module, RunConfig, LeaveOneOut]:
    """Rebuild a trained model of any kind from a run directory.

    Semantic IDs come from the run's ``sid_codes.npz``; text vectors (COBRA) are re-derived from the
    embedding cache and must match the fingerprint stored in ``config.json``.

    Args:
        run_dir: a directory written by :func:`cobra.train.fit`.
        checkpoint: ``best.pt`` (falls back to ``last.pt`` when absent) or ``last.pt``.
        split: the data split (default: ``config.dataset`` loaded and split leave-one-out).
        text_vectors: (N, Dt) float32 item text vectors (default: :func:`cobra.inputs.item_text_vectors`);
            checked against the run's fingerprint either way.

    Returns:
        (model in eval mode on CPU with the weights of ``checkpoint``, its RunConfig, the data split).
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    split = split if split is not None else load_split(config.dataset)
    if split.num_items != config.model.num_items:
        raise ConfigError(f"{run_dir} was trained on {config.model.num_items} items but {config.dataset} "
                          f"now has {split.num_items}; the dataset cache changed, retrain the run")
    codes = None
    if config.uses_sids:
        path = run_dir / "sid_codes.npz"
        if not path.is_file():
            raise ConfigError(f"{path} is missing; the run's semantic IDs are needed to rebuild its model")
        codes = load_run_codes(path, config)
    if config.uses_text:
        text_vectors = text_vectors if text_vectors is not None else item_text_vectors(config.dataset, config.encoder)
        check_text_vectors(config, text_vectors, run_dir)
    model = build_model(config, codes, text_vectors)
    path = run_dir / checkpoint
    if not path.is_file() and checkpoint == "best.pt":
        path = run_dir / "last.pt"
    load_weights(model, load_checkpoint(path), path, run_dir)
    return model.eval(), config, split
