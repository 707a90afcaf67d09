"""Training configs and named presets: ``python -m cobra train --preset NAME --set key=value``.

Explained in chapter 05 (book/05_hstu.py); the COBRA presets in chapters 09-10 (book/09_dual_loss.py).

A run is described by one frozen :class:`RunConfig`: the dataset and profile, a
model ``kind`` with its config (:class:`cobra.models.ModelConfig`, :class:`cobra.cobra_model.CobraConfig`
or :class:`cobra.tiger.TigerConfig`, see :data:`cobra.model_kinds.MODELS`; all three extend
:class:`cobra.hstu.BackboneConfig`, and each holds its model's loss settings) and a :class:`TrainConfig`
(the optimiser and the loop only). :data:`PRESETS` names the ones the book and the README use:

* the HSTU paper's public MovieLens settings (meta-recsys/generative-recommenders' configs): ``hstu-ml1m``,
  ``hstu-large-ml1m``, ``hstu-ml20m``, ``hstu-large-ml20m``, ``sasrec-ml1m``,
  ``sasrec-ml20m`` -- sequence length 200, batch 128, AdamW lr 1e-3 betas (0.9, 0.98)
  no weight decay, dropout 0.2, 128 uniform negatives, temperature 0.05, 101 epochs;
* the ``cpu`` profile's (MovieLens-100K, a couple of minutes on 2 cores): ``hstu-cpu``,
  ``sasrec-cpu`` and ``hstu-sid-cpu`` (PrefixN over semantic IDs fused with the ID table);
* the ``4090d`` profile's (MovieLens-20M at the paper's sizes, bf16): ``hstu-4090d``,
  ``sasrec-4090d``, ``hstu-sid-4090d``;
* the generative models of chapters 08-11, a run ``kind`` other than ``sequential``
  (:data:`cobra.model_kinds.MODELS`): ``cobra-cpu`` / ``cobra-4090d`` (interleaved SID/VID,
  catalogue VID negatives, beam decoding) and ``tiger-cpu`` / ``tiger-4090d``.

:func:`get_preset` applies overrides (``{"lr": 3e-4}`` or ``{"train.lr": 3e-4}``) and
refuses unknown keys by name, values of the wrong type (``epochs=1.5``, ``compile=maybe``, ``grad_clip=nan``)
and sizes out of range (:data:`MAX_SIZE`), naming the field. Names that become file names under the cache
(``preset``, ``dataset``, ``encoder``) must be safe names (:func:`cobra.config.require_safe_name`).
A run directory holds its config as ``config.json``; :func:`load_run_config` reads it back, migrating the
layout of older files (:func:`migrate_run_config`: ``train.loss`` / ``num_negatives`` / ``temperature`` moved
to ``model``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobra.cobra_model import CobraConfig
from cobra.config import (
    INT64_MAX,
    MAX_EPOCHS_ENV,
    PROFILES,
    ConfigError,
    check_fields,
    check_value,
    field_hints,
    from_dict,
    get_profile,
    require_choice,
    require_positive,
    require_range,
    require_safe_name,
)
from cobra.data import WINDOWS
from cobra.decode import DecodeConfig
from cobra.model_kinds import MODELS, model_kind
from cobra.models import ModelConfig
from cobra.tiger import TigerConfig

AMP_MODES = ("none", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
# ModelConfig.num_items is read off the dataset when a run starts; presets hold this placeholder.
NUM_ITEMS_FROM_DATA = 1
# Sanity bounds, checked when a config is built (so a typo fails before any data loads, not in the middle of a
# run): sizes and counts (dims, blocks, heads, lengths, batch sizes, epochs ...) are at most MAX_SIZE, table rows
# (items, hashed SID rows, VID cache slots) at most MAX_ROWS.
MAX_SIZE = 2**20
MAX_ROWS = 2**24
_SIZE_NOTE = " (2**20, a sanity bound on sizes and counts)"
_ROWS_NOTE = " (2**24, a sanity bound on table rows)"
# Model-section fields (any model kind, and its nested decode section) that are sizes or counts >= 1 ...
_MODEL_SIZES = ("dim", "num_blocks", "num_heads", "max_seq_len", "attention_dim", "linear_dim", "ffn_dim",
                "num_negatives", "beam_width", "beam_items", "soft_top_k", "eval_chunk", "sid_levels")
# ... table rows >= 1, and counts that may be 0.
_MODEL_ROWS = ("num_items", "sid_table_size", "cache_size")
_MODEL_COUNTS = ("num_time_buckets",)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained: the optimiser and the loop (the loss settings belong to the model config).

    Attributes:
        epochs: most epochs (one epoch = every window of :class:`cobra.data.TrainWindows`).
        batch_size: windows per step (per process under DDP).
        eval_batch_size: users per evaluation batch.
        lr: AdamW learning rate.
        betas: AdamW betas.
        weight_decay: AdamW (decoupled) weight decay.
        warmup_steps: linear warm-up from 0 to ``lr`` over this many steps (0 = none).
        grad_clip: clip the global gradient norm to this (0 = no clipping).
        amp: autocast dtype on CUDA, ``bf16``, ``fp16`` (with a gradient scaler) or ``none``;
            ignored on CPU.
        compile: wrap the model in ``torch.compile``.
        seed: seed of model init, data order, dropout and negatives.
        deterministic: ``torch.use_deterministic_algorithms`` (exact reruns on CPU).
        patience: stop after this many evaluations without a better validation NDCG@10 (0 = never).
        eval_every: evaluate on the validation split every this many epochs (and after the last).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        num_threads: ``torch.set_num_threads`` for the run (0 = leave torch's default); 1 is faster for
            small models on a busy machine.
        windows: ``all`` (every training event is a target once per epoch) or ``last`` (the most recent
            ``max_seq_len + 1`` events of each user only); see :class:`cobra.data.TrainWindows`.
    """

    epochs: int = 101
    batch_size: int = 128
    eval_batch_size: int = 512
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    amp: str = "none"
    compile: bool = False
    seed: int = 42
    deterministic: bool = True
    patience: int = 10
    eval_every: int = 1
    device: str = "auto"
    num_threads: int = 0
    windows: str = "all"

    def __post_init__(self) -> None:
        check_fields(self)  # no float or bool for an int, finite floats, two numbers for betas ...
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers, got {self.betas}")
        require_choice(self, "amp", AMP_MODES)
        require_choice(self, "windows", WINDOWS)
        require_choice(self, "device", DEVICES)
        require_positive(self, ("epochs", "batch_size", "eval_batch_size", "eval_every"))
        for name in ("warmup_steps", "patience", "grad_clip", "weight_decay", "num_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        require_range(self, ("epochs", "batch_size", "eval_batch_size", "eval_every"), 1, MAX_SIZE, note=_SIZE_NOTE)
        require_range(self, ("warmup_steps", "patience", "num_threads"), 0, MAX_SIZE, note=_SIZE_NOTE)
        require_range(self, ("seed",), 0, INT64_MAX, note=" (2**63 - 1)")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must both be in [0, 1) (AdamW), got {self.betas}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: data, network, training, and where semantic IDs and text vectors come from.

    Attributes:
        preset: the preset it was built from (a label in results and run directories).
        profile: ``cpu`` or ``4090d`` (see :mod:`cobra.config`).
        dataset: MovieLens variant.
        model: the network and its loss, an instance of ``MODELS[kind].config``
            (:class:`cobra.models.ModelConfig`, :class:`cobra.cobra_model.CobraConfig` or
            :class:`cobra.tiger.TigerConfig`); ``model.num_items`` is set from the dataset when the run starts
            (:func:`cobra.runs.build_model`).
        train: the optimiser and the loop.
        encoder: item text encoder for semantic IDs and COBRA's VID tower.
        sid_levels: SID depth ``L`` of the residual quantiser.
        sid_codes: codes per level ``K``.
        sid_method: clustering method of :mod:`cobra.sid` (``balanced`` ...).
        kind: key of :data:`cobra.model_kinds.MODELS` (``sequential``, ``cobra``, ``tiger``).
        text_vectors: fingerprint (``"N x D sha256:..."``) of the item text vectors the run was trained
            with, set when the run starts (kinds that read text vectors only); a run whose embedding
            cache changed since is refused when it is reloaded or resumed.
    """

    preset: str
    profile: str
    dataset: str
    model: ModelConfig | CobraConfig | TigerConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    encoder: str = "minilm"
    sid_levels: int = 3
    sid_codes: int = 32
    sid_method: str = "balanced"
    kind: str = "sequential"
    text_vectors: str | None = None

    def __post_init__(self) -> None:
        expected = model_kind(self.kind).config
        if not isinstance(self.model, expected):
            raise ConfigError(f"a {self.kind!r} run needs a {expected.__name__} model section, got "
                              f"{type(self.model).__name__}; set kind to match the model")
        from cobra.sid import METHODS

        check_fields(self)  # every field, the model and train sections' too, against its annotation
        require_choice(self, "profile", sorted(PROFILES))
        # These become parts of file names under the cache (runs/<preset>-..., sid/<dataset>__<encoder>__...).
        require_safe_name(self, "preset")
        require_safe_name(self, "dataset")
        require_safe_name(self, "encoder", hub=True)  # a sentence-transformers id: owner/model
        require_choice(self, "sid_method", sorted(METHODS))
        require_range(self, ("sid_levels", "sid_codes"), 1, MAX_SIZE, note=_SIZE_NOTE)
        _check_model_sizes(self.model, "model.")

    @property
    def uses_sids(self) -> bool:
        """Whether the model needs semantic-ID codes."""
        return MODELS[self.kind].needs_codes(self.model)

    @property
    def uses_text(self) -> bool:
        """Whether the model needs the items' text vectors."""
        return MODELS[self.kind].needs_text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping (tuples become lists, nested configs mappings)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def _check_model_sizes(config: Any, prefix: str) -> None:
    """The sanity bounds of a model section (and its nested sections): sizes in [1, MAX_SIZE], table rows in
    [1, MAX_ROWS], ``num_time_buckets`` in [0, MAX_SIZE], ``ngram_sizes`` non-empty and positive."""
    names = {f.name for f in dataclasses.fields(config)}
    require_range(config, [n for n in _MODEL_SIZES if n in names], 1, MAX_SIZE, prefix=prefix, note=_SIZE_NOTE)
    require_range(config, [n for n in _MODEL_ROWS if n in names], 1, MAX_ROWS, prefix=prefix, note=_ROWS_NOTE)
    require_range(config, [n for n in _MODEL_COUNTS if n in names], 0, MAX_SIZE, prefix=prefix, note=_SIZE_NOTE)
    if "ngram_sizes" in names and not (config.ngram_sizes and all(1 <= n <= MAX_SIZE for n in config.ngram_sizes)):
        raise ConfigError(f"{prefix}ngram_sizes must be a non-empty list of n-gram lengths between 1 and {MAX_SIZE}, "
                          f"got {list(config.ngram_sizes)}")
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _check_model_sizes(value, f"{prefix}{f.name}.")


# ------------------------------------------------------------------------------------------ (de)serialising
def _coerce(hint: Any, value: Any) -> Any:
    """JSON value -> the field's type where JSON loses it (tuples, nested dataclasses)."""
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return dataclass_from_json(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return tuple(value)
    return value


def dataclass_from_json(cls: type, values: Mapping[str, Any]) -> Any:
    """Build frozen dataclass ``cls`` from a JSON mapping: unknown keys refused, tuples and nested configs restored."""
    hints = typing.get_type_hints(cls)
    return from_dict(cls, {k: _coerce(hints.get(k), v) for k, v in values.items()})


# The loss settings that TrainConfig held until they moved to the model section (config.json files written
# before then have them under "train"; migrate_run_config moves them).
MOVED_LOSS_KEYS = ("loss", "num_negatives", "temperature")


# Settings added after runs were saved without them, and the value those runs were trained with (a default
# that changed): ``train.windows`` (one window per user before every event became a target) and
# ``model.request_time`` (the last position's query time was the last event's own time).
ADDED_KEYS = {"train": {"windows": "last"}, "model": {"request_time": False}}


def migrate_run_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """A run config mapping (``RunConfig.to_dict`` layout) brought up to date from an older ``config.json``.

    * Before the loss settings moved into the model configs, the ``train`` section held ``loss``,
      ``num_negatives`` and ``temperature`` (:data:`MOVED_LOSS_KEYS`). A ``sequential`` run trained with them,
      so they move to ``model``; the other kinds never read them (COBRA has its own in ``model``, TIGER none),
      so they are dropped.
    * A setting added later (:data:`ADDED_KEYS`) that the file lacks gets the value the run was trained with,
      so an old run reloads, evaluates and resumes as it was trained.

    A mapping in the current layout comes back unchanged; ``values`` is not modified.

    Raises:
        ConfigError: a sequential run's file holds one of them in both sections, with different values.
    """
    values = dict(values)
    train, model = values.get("train"), values.get("model")
    if not (isinstance(train, Mapping) and isinstance(model, Mapping)):
        return values  # run_config_from_dict names the missing section
    values["train"] = {**ADDED_KEYS["train"], **train}
    values["model"] = model = {**ADDED_KEYS["model"], **model}
    moved = {k: train[k] for k in MOVED_LOSS_KEYS if k in train}
    if not moved:
        return values
    values["train"] = {k: v for k, v in values["train"].items() if k not in moved}
    if values.get("kind", "sequential") == "sequential":
        clash = [k for k, v in moved.items() if k in model and model[k] != v]
        if clash:
            raise ConfigError(f"the run config has {', '.join(f'train.{k} and model.{k}' for k in clash)} with "
                              "different values; keep only the model one (the loss settings live in the model "
                              "section)")
        values["model"] = {**model, **moved}
    return values


def run_config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict` (unknown keys refused by name; no ``kind`` = ``sequential``).

    An older layout is migrated first (:func:`migrate_run_config`), so run directories written before a
    setting moved still load and resume.
    """
    values = migrate_run_config(values)
    for key in ("model", "train"):
        if key not in values or not isinstance(values[key], Mapping):
            raise ConfigError(f"run config lacks the {key!r} section (a mapping)")
    kind = model_kind(values.get("kind", "sequential"))
    values["model"] = dataclass_from_json(kind.config, values["model"])
    values["train"] = dataclass_from_json(TrainConfig, values["train"])
    return dataclass_from_json(RunConfig, values)


def save_run_config(config: RunConfig, path: str | Path) -> Path:
    """Write ``config`` as indented JSON."""
    path = Path(path)
    path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_run_config(path: str | Path) -> RunConfig:
    """Read a ``config.json`` written by :func:`save_run_config` (a run directory or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass a run directory written by `python -m cobra train`")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); the run directory is damaged") from None
    return run_config_from_dict(values)


# ----------------------------------------------------------------------------------------------- overrides
_SECTIONS = ("model", "train")
_RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _SECTIONS)
_FIXED_KEYS = {"kind": "a run's kind is fixed by its preset; pick a preset of that kind",
               "text_vectors": "text_vectors is read off the embedding cache when the run starts"}


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _dotted_names(cls: type, prefix: str) -> list[str]:
    """Every settable ``prefix.name`` of ``cls``, nested dataclasses spelled out (``model.decode.mode``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints.get(f.name)):
            out += _dotted_names(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _field_hint(cls: type, path: list[str]) -> Any:
    """The annotation of the field ``path`` (``["decode", "mode"]``) of dataclass ``cls``."""
    for name in path[:-1]:
        cls = field_hints(cls)[name]
    return field_hints(cls).get(path[-1], Any)


def _merge(obj: Any, changes: Mapping[str, Any]) -> Any:
    """``obj`` (a frozen dataclass) with nested ``changes`` applied (``{"decode": {"mode": "beam"}}``)."""
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for name, value in changes.items():
        current = values.get(name)
        values[name] = _merge(current, value) if dataclasses.is_dataclass(current) and isinstance(value, dict) \
            else value
    plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in values.items()}
    return dataclass_from_json(type(obj), plain)


def apply_overrides(config: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """``config`` with ``overrides`` applied; refuses unknown keys by name.

    Keys are dotted paths (``train.lr``, ``model.dim``, ``model.decode.mode``) or a bare key looked up
    in the run fields (``dataset``, ``sid_codes`` ...), then in ``train`` and the model section, which share
    no key (``temperature`` is ``model.temperature`` for every kind that has one: the loss settings live in
    the model section, ``train`` holds only the optimiser and the loop). The model section is the config
    class of the run's kind. Values are already parsed
    (see :func:`cobra.config.parse_overrides`); each is checked against its field's annotation
    (:func:`cobra.config.check_value`: ``train.epochs=1.5`` is refused, naming ``train.epochs``), and a string
    field takes the text as typed when ``overrides`` has it (``overrides.raw``: ``preset=2024``).
    """
    classes = {"model": type(config.model), "train": TrainConfig}
    per: dict[str, dict[str, Any]] = {"run": {}, "model": {}, "train": {}}
    raw: Mapping[str, str] = getattr(overrides, "raw", {})

    def valid() -> str:
        return ", ".join(sorted({*_RUN_KEYS, *_dotted_names(TrainConfig, "train."),
                                 *_dotted_names(classes["model"], "model.")} - set(_FIXED_KEYS)))

    for key, value in overrides.items():
        section, _, rest = key.partition(".")
        if rest:
            if section not in classes:
                raise ConfigError(f"unknown key {key!r}; valid keys: {valid()}")
            path = rest.split(".")
        elif key in _RUN_KEYS:
            section, path = "run", [key]
        else:
            found = [s for s in _SECTIONS if key in _names(classes[s])]  # at most one: the sections share no key
            if not found:
                raise ConfigError(f"unknown key {key!r}; valid keys: {valid()}")
            section, path = found[0], [key]
        if section == "train" and path[0] in MOVED_LOSS_KEYS:
            now = (f"set model.{path[0]} instead" if path[0] in _names(classes["model"])
                   else f"a {config.kind!r} model has no {path[0]}")
            raise ConfigError(f"unknown key {key!r}: the loss settings live in the model section; {now}")
        if section != "run" and ".".join([section, *path]) not in _dotted_names(classes[section], f"{section}."):
            raise ConfigError(f"unknown key {key!r}; valid keys: {valid()}")
        if section == "model" and path == ["num_items"]:
            raise ConfigError("num_items cannot be set: it is read off the dataset when the run starts")
        if section == "run" and key in _FIXED_KEYS:
            raise ConfigError(f"{key} cannot be set: {_FIXED_KEYS[key]}")
        hint = _field_hint(RunConfig if section == "run" else classes[section], path)
        value = check_value(hint, value, key if section == "run" else ".".join([section, *path]), raw=raw.get(key))
        target = per[section]
        for name in path[:-1]:
            target = target.setdefault(name, {})
        target[path[-1]] = value
    model = _merge(config.model, per["model"])
    train = _merge(config.train, per["train"])
    return dataclass_from_json(RunConfig, {**{k: getattr(config, k) for k in _RUN_KEYS}, **per["run"],
                                           "model": model, "train": train})


# ------------------------------------------------------------------------------------------------- presets
def _scale(profile: str) -> dict[str, Any]:
    """The run fields a profile owns (dataset, encoder, SID shape), so presets never repeat them.

    ``$COBRA_DATASET`` / ``$COBRA_ENCODER`` reach the presets through :func:`cobra.config.get_profile`."""
    p = get_profile(profile)
    return {"profile": p.name, "dataset": p.dataset, "encoder": p.encoder, "sid_levels": p.sid_levels,
            "sid_codes": p.sid_codes}


def _paper(preset: str, dataset: str, backbone: str, dim: int, blocks: int, heads: int,
           profile: str = "4090d", **train: Any) -> RunConfig:
    """The HSTU reference's MovieLens settings (its public ML-1M / ML-20M configs)."""
    model = ModelConfig(num_items=NUM_ITEMS_FROM_DATA, backbone=backbone, dim=dim, num_blocks=blocks,
                        num_heads=heads, max_seq_len=PROFILES[profile].max_seq_len, dropout=0.2)
    # The loss is ModelConfig's default: sampled softmax, 128 uniform negatives, temperature 0.05.
    train_cfg = TrainConfig(epochs=101, batch_size=128, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.0, **train)
    return RunConfig(preset=preset, model=model, train=train_cfg, **{**_scale(profile), "dataset": dataset})


def _gpu(**changes: Any) -> dict[str, Any]:
    """Training settings of the GPU presets: bf16 autocast, non-deterministic kernels, patience 10."""
    return {"amp": "bf16", "deterministic": False, "eval_batch_size": 1024, **changes}


# The ``cpu`` recipe, shared by every model the book compares (chapter 11 lists what still differs, and why):
# batch 128, every training event a target each epoch, at most 100 epochs with early stopping after 10
# validations without a better NDCG@10, AdamW betas (0.9, 0.98) without weight decay, seeds 0..4 in bench
# quality, a softmax over the whole catalogue (or the whole code vocabulary) as the loss where the model has one.
CPU_RECIPE = {"epochs": 100, "batch_size": 128, "eval_batch_size": 512, "betas": (0.9, 0.98), "weight_decay": 0.0,
              "patience": 10, "eval_every": 1, "amp": "none", "deterministic": True, "device": "cpu",
              "windows": "all"}
# What the recipe leaves to tuning, chosen on validation NDCG@10 with the same grid for every model
# (``python -m cobra bench tune``, book/results/tune_cpu.json; tests check that these are its choices).
TUNE_GRID = {"train.lr": (1e-3, 3e-3), "model.dropout": (0.2, 0.5)}
TUNED: dict[str, dict[str, float]] = {
    "hstu-cpu": {"train.lr": 0.001, "model.dropout": 0.2},
    "sasrec-cpu": {"train.lr": 0.003, "model.dropout": 0.2},
    "hstu-sid-cpu": {"train.lr": 0.001, "model.dropout": 0.2},
    "tiger-cpu": {"train.lr": 0.003, "model.dropout": 0.2},
    "cobra-cpu": {"train.lr": 0.003, "model.dropout": 0.2},
}


def _cpu_run(preset: str, model: Any, kind: str = "sequential") -> RunConfig:
    """A ``cpu`` preset: ``model`` on MovieLens-100K under :data:`CPU_RECIPE` with its :data:`TUNED` values."""
    tuned = TUNED[preset]
    model = model.replace(dropout=tuned["model.dropout"])
    train = TrainConfig(lr=tuned["train.lr"], **CPU_RECIPE)
    return RunConfig(preset=preset, model=model, train=train, kind=kind, **_scale("cpu"))


_CPU_SIZES = {"num_items": NUM_ITEMS_FROM_DATA, "dim": 64, "num_blocks": 2, "num_heads": 1,
              "max_seq_len": PROFILES["cpu"].max_seq_len}


def _cpu(preset: str, backbone: str, embedding: str = "id", fusion: str | None = None) -> RunConfig:
    """HSTU / SASRec / HSTU + PrefixN on ML-100K: D = 64, 2 blocks, 1 head, T = 50, full softmax.

    Full softmax: exact, and on 1,682 items no dearer than 128 sampled negatives per position (measured side
    by side, one epoch each: the same seconds within noise since sampled_softmax_loss normalises each distinct
    sampled item once).
    """
    model = ModelConfig(**_CPU_SIZES, backbone=backbone, embedding=embedding, fusion=fusion, sid_table_size=2**14,
                        loss="full_softmax", num_negatives=128, temperature=0.05)
    return _cpu_run(preset, model)


def _4090d(preset: str, backbone: str, embedding: str = "id", fusion: str | None = None) -> RunConfig:
    """ML-20M at the paper's HSTU sizes (4 blocks, 4 heads, D = 256, T = 200), bf16 on one 24 GB card."""
    config = _paper(preset, get_profile("4090d").dataset, backbone, 256, 4, 4, **_gpu())
    return config.replace(model=config.model.replace(embedding=embedding, fusion=fusion))


def _cobra_cpu(preset: str = "cobra-cpu") -> RunConfig:
    """COBRA on ML-100K as the sources describe it: the VID is a learned projection of the frozen text vector
    (no item-ID embedding), softmax over the whole SID vocabulary and over the whole catalogue for the VID
    (InfoNCE with catalogue negatives), beam decoding; the ``cpu`` HSTU sizes and recipe."""
    model = CobraConfig(**_CPU_SIZES, sid_table_size=2**14, vid_id_embedding=False, lambda_vid=1.0,
                        temperature=0.05, num_negatives=128, sid_loss="full-softmax", vid_negatives="catalogue",
                        decode=DecodeConfig(mode="beam"))
    return _cpu_run(preset, model, "cobra")


def _tiger_cpu(preset: str = "tiger-cpu") -> RunConfig:
    """TIGER on ML-100K: code-by-code generation (a softmax over each level's codes) on the ``cpu`` HSTU
    sizes and recipe, beam 20."""
    return _cpu_run(preset, TigerConfig(**_CPU_SIZES, beam_width=20), "tiger")


def _generative_4090d(config: RunConfig, preset: str, batch_size: int) -> RunConfig:
    """A ``cpu`` COBRA / TIGER preset at the ``4090d`` sizes: ML-20M, qwen3, 3 x 128 SIDs, D = 256, 4 x 4, T = 200,
    with the HSTU paper's lr 1e-3 and dropout 0.2 (the ``cpu`` tuning is ML-100K's)."""
    model = config.model.replace(dim=256, num_blocks=4, num_heads=4, max_seq_len=PROFILES["4090d"].max_seq_len,
                                 sid_table_size=2**16, dropout=0.2)
    if config.kind == "cobra":  # 128 sampled SIDs, as the sequential 4090d presets: no (positions x 27k) logits
        model = model.replace(sid_loss="sampled-softmax")
    train = TrainConfig(**{**dataclasses.asdict(config.train), "epochs": 101, "batch_size": batch_size, "lr": 1e-3,
                           "patience": 10, "device": "auto", **_gpu()})
    return config.replace(preset=preset, model=model, train=train, **_scale("4090d"))


PRESETS: dict[str, RunConfig] = {
    # The HSTU paper's public MovieLens settings (its ML-1M / ML-20M configs).
    "hstu-ml1m": _paper("hstu-ml1m", "ml-1m", "hstu", 50, 2, 1, **_gpu()),
    "hstu-large-ml1m": _paper("hstu-large-ml1m", "ml-1m", "hstu", 50, 8, 2, **_gpu()),
    "sasrec-ml1m": _paper("sasrec-ml1m", "ml-1m", "sasrec", 50, 2, 1, **_gpu()),
    "hstu-ml20m": _paper("hstu-ml20m", "ml-20m", "hstu", 256, 4, 4, **_gpu()),
    "hstu-large-ml20m": _paper("hstu-large-ml20m", "ml-20m", "hstu", 256, 16, 8, **_gpu()),
    "sasrec-ml20m": _paper("sasrec-ml20m", "ml-20m", "sasrec", 256, 4, 4, **_gpu()),
    # cpu profile: MovieLens-100K.
    "hstu-cpu": _cpu("hstu-cpu", "hstu"),
    "sasrec-cpu": _cpu("sasrec-cpu", "sasrec"),
    "hstu-sid-cpu": _cpu("hstu-sid-cpu", "hstu", "prefixN", "sum"),
    "cobra-cpu": _cobra_cpu(),
    "tiger-cpu": _tiger_cpu(),
    # 4090d profile: MovieLens-20M.
    "hstu-4090d": _4090d("hstu-4090d", "hstu"),
    "sasrec-4090d": _4090d("sasrec-4090d", "sasrec"),
    "hstu-sid-4090d": _4090d("hstu-sid-4090d", "hstu", "prefixN", "sum"),
    # COBRA interleaves 2 tokens per item (T = 200 -> 402 slots) and its catalogue softmax spans ~27k items:
    # batch 64 keeps a step inside 24 GB; TIGER's sequence is T x (L + 1) tokens.
    "cobra-4090d": _generative_4090d(_cobra_cpu(), "cobra-4090d", 64),
    "tiger-4090d": _generative_4090d(_tiger_cpu(), "tiger-4090d", 64),
}


def get_preset(name: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The preset ``name`` with ``overrides`` applied (see :func:`apply_overrides`).

    ``$COBRA_MAX_EPOCHS``, when set, caps ``train.epochs`` (the full-scale smoke test runs each chapter's
    training for one epoch that way).

    Raises:
        ConfigError: unknown preset name, unknown key (named in the message) or a bad value.
    """
    try:
        config = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
    config = apply_overrides(config, overrides or {})
    cap = os.environ.get(MAX_EPOCHS_ENV)
    if cap:  # smoke tests and dry runs: every code path, few epochs
        if not cap.isdigit() or int(cap) < 1:
            raise ConfigError(f"{MAX_EPOCHS_ENV}={cap!r} must be a positive whole number of epochs")
        config = config.replace(train=dataclasses.replace(config.train, epochs=min(config.train.epochs, int(cap))))
    return config


def preset_table() -> list[dict[str, Any]]:
    """One row per preset (for the README and chapter 05): the settings that tell them apart."""
    rows = []
    for name, c in PRESETS.items():
        m, t = c.model, c.train
        rows.append({
            "preset": name, "kind": c.kind, "dataset": c.dataset, "backbone": getattr(m, "backbone", "hstu"),
            "embedding": (m.embedding + (f"+{m.fusion}" if m.fusion else "")) if c.kind == "sequential"
            else "sid+vid" if c.uses_text else "sid", "dim": m.dim,
            "blocks": m.num_blocks, "heads": m.num_heads, "max_seq_len": m.max_seq_len,
            "batch_size": t.batch_size, "epochs": t.epochs, "amp": t.amp,
        })
    return rows
