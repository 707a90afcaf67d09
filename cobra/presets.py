"""Training configs and named presets: ``python -m cobra train --preset NAME --set key=value``.

Explained in chapter 06 (book/06_hstu.py).

A run is described by one frozen :class:`RunConfig`: the dataset and profile, a
:class:`cobra.models.ModelConfig` (the network) and a :class:`TrainConfig` (the
optimiser, loss and loop). :data:`PRESETS` names the ones the book and the README
use:

* the HSTU paper's public MovieLens settings (DESIGN §4): ``hstu-ml1m``,
  ``hstu-large-ml1m``, ``hstu-ml20m``, ``hstu-large-ml20m``, ``sasrec-ml1m``,
  ``sasrec-ml20m`` -- sequence length 200, batch 128, AdamW lr 1e-3 betas (0.9, 0.98)
  no weight decay, dropout 0.2, 128 uniform negatives, temperature 0.05, 101 epochs;
* the ``cpu`` profile's (MovieLens-100K, a couple of minutes on 2 cores): ``hstu-cpu``,
  ``sasrec-cpu`` and ``hstu-sid-cpu`` (PrefixN over semantic IDs fused with the ID table);
* the ``4090d`` profile's (MovieLens-20M at the paper's sizes, bf16): ``hstu-4090d``,
  ``sasrec-4090d``, ``hstu-sid-4090d``.

:func:`get_preset` applies overrides (``{"lr": 3e-4}`` or ``{"train.lr": 3e-4}``) and
refuses unknown keys by name. A run directory holds its config as ``config.json``;
:func:`load_run_config` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobra.config import ConfigError, from_dict
from cobra.models import ModelConfig

AMP_MODES = ("none", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
# ModelConfig.num_items is read off the dataset when a run starts; presets hold this placeholder.
NUM_ITEMS_FROM_DATA = 1


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (everything that is not the network or the data).

    Attributes:
        epochs: most epochs (one epoch = one window per training user).
        batch_size: windows per step (per process under DDP).
        eval_batch_size: users per evaluation batch.
        lr: AdamW learning rate.
        betas: AdamW betas.
        weight_decay: AdamW (decoupled) weight decay.
        warmup_steps: linear warm-up from 0 to ``lr`` over this many steps (0 = none).
        grad_clip: clip the global gradient norm to this (0 = no clipping).
        loss: key of :data:`cobra.losses.LOSSES` (``sampled_softmax`` or ``full_softmax``).
        num_negatives: ``R`` uniform negatives per position (sampled softmax).
        temperature: logits are cosine / temperature.
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
    """

    epochs: int = 101
    batch_size: int = 128
    eval_batch_size: int = 512
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    loss: str = "sampled_softmax"
    num_negatives: int = 128
    temperature: float = 0.05
    amp: str = "none"
    compile: bool = False
    seed: int = 42
    deterministic: bool = True
    patience: int = 10
    eval_every: int = 1
    device: str = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        from cobra.losses import LOSSES

        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers, got {self.betas}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {sorted(LOSSES)}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown amp {self.amp!r}; choose one of {list(AMP_MODES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose one of {list(DEVICES)}")
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every", "num_negatives"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "patience", "grad_clip", "weight_decay", "num_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ConfigError(f"lr and temperature must be > 0, got lr={self.lr}, temperature={self.temperature}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: data, network, training, and where semantic IDs come from.

    Attributes:
        preset: the preset it was built from (a label in results and run directories).
        profile: ``cpu`` or ``4090d`` (see :mod:`cobra.config`).
        dataset: MovieLens variant.
        model: the network; ``model.num_items`` is set from the dataset when the run starts.
        train: the loop.
        encoder: item text encoder for semantic IDs (SID embeddings only).
        sid_levels: SID depth ``L`` of the residual quantiser.
        sid_codes: codes per level ``K``.
        sid_method: clustering method of :mod:`cobra.sid` (``balanced`` ...).
    """

    preset: str
    profile: str
    dataset: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    encoder: str = "minilm"
    sid_levels: int = 3
    sid_codes: int = 32
    sid_method: str = "balanced"

    @property
    def uses_sids(self) -> bool:
        """Whether the model's item embedding needs semantic-ID codes."""
        return self.model.embedding != "id"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------------ (de)serialising
def _coerce(hint: Any, value: Any) -> Any:
    """JSON value -> the field's type where JSON loses it (tuples)."""
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return tuple(value)
    return value


def dataclass_from_json(cls: type, values: Mapping[str, Any]) -> Any:
    """Build frozen dataclass ``cls`` from a JSON mapping: unknown keys refused, tuples restored."""
    hints = typing.get_type_hints(cls)
    return from_dict(cls, {k: _coerce(hints.get(k), v) for k, v in values.items()})


def run_config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict` (unknown keys refused by name)."""
    values = dict(values)
    for key in ("model", "train"):
        if key not in values or not isinstance(values[key], Mapping):
            raise ConfigError(f"run config lacks the {key!r} section (a mapping)")
    values["model"] = dataclass_from_json(ModelConfig, values["model"])
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
_SECTIONS = {"model": ModelConfig, "train": TrainConfig}
_RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _SECTIONS)


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def apply_overrides(config: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """``config`` with ``overrides`` applied; refuses unknown keys by name.

    Keys are ``section.key`` (``train.lr``, ``model.dim``) or a bare key looked up in the run
    fields (``dataset``, ``sid_codes`` ...), then ``train``, then ``model``. Values are already
    parsed (see :func:`cobra.config.parse_overrides`).
    """
    per: dict[str, dict[str, Any]] = {"run": {}, "model": {}, "train": {}}
    valid = sorted({*_RUN_KEYS, *(f"{s}.{n}" for s, c in _SECTIONS.items() for n in _names(c))})
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        if section:
            if section not in _SECTIONS or name not in _names(_SECTIONS[section]):
                raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(valid)}")
        elif name in _RUN_KEYS:
            section = "run"
        else:
            section = next((s for s in ("train", "model") if name in _names(_SECTIONS[s])), "")
            if not section:
                raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(valid)}")
        if section == "model" and name == "num_items":
            raise ConfigError("num_items cannot be set: it is read off the dataset when the run starts")
        per[section][name] = value
    model = dataclass_from_json(ModelConfig, {**dataclasses.asdict(config.model), **per["model"]})
    train = dataclass_from_json(TrainConfig, {**dataclasses.asdict(config.train), **per["train"]})
    return dataclass_from_json(RunConfig, {**{k: getattr(config, k) for k in _RUN_KEYS}, **per["run"],
                                           "model": model, "train": train})


# ------------------------------------------------------------------------------------------------- presets
def _paper(preset: str, dataset: str, backbone: str, dim: int, blocks: int, heads: int,
           profile: str = "4090d", **train: Any) -> RunConfig:
    """The HSTU reference's MovieLens settings (DESIGN §4)."""
    model = ModelConfig(num_items=NUM_ITEMS_FROM_DATA, backbone=backbone, dim=dim, num_blocks=blocks,
                        num_heads=heads, max_seq_len=200, dropout=0.2)
    train_cfg = TrainConfig(epochs=101, batch_size=128, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.0,
                            num_negatives=128, temperature=0.05, **train)
    return RunConfig(preset=preset, profile=profile, dataset=dataset, model=model, train=train_cfg,
                     encoder="qwen3", sid_levels=3, sid_codes=128)


def _gpu(**changes: Any) -> dict[str, Any]:
    """Training settings of the GPU presets: bf16 autocast, non-deterministic kernels, patience 10."""
    return {"amp": "bf16", "deterministic": False, "eval_batch_size": 1024, **changes}


def _cpu(preset: str, backbone: str, embedding: str = "id", fusion: str | None = None) -> RunConfig:
    """ML-100K settings that train in a couple of minutes on 2 cores and beat ``popular`` clearly."""
    model = ModelConfig(num_items=NUM_ITEMS_FROM_DATA, backbone=backbone, embedding=embedding, fusion=fusion,
                        dim=64, num_blocks=2, num_heads=1, max_seq_len=50, dropout=0.2,
                        sid_table_size=2**14)
    # Full softmax: exact and cheaper than 128 sampled negatives per position for 1,682 items on a CPU.
    train = TrainConfig(epochs=50, batch_size=128, eval_batch_size=1024, lr=1e-3, betas=(0.9, 0.98),
                        weight_decay=0.0, loss="full_softmax", num_negatives=128, temperature=0.05,
                        patience=8, eval_every=1, amp="none", deterministic=True, device="cpu")
    return RunConfig(preset=preset, profile="cpu", dataset="ml-100k", model=model, train=train,
                     encoder="minilm", sid_levels=3, sid_codes=32)


def _4090d(preset: str, backbone: str, embedding: str = "id", fusion: str | None = None) -> RunConfig:
    """ML-20M at the paper's HSTU sizes (4 blocks, 4 heads, D = 256, T = 200), bf16 on one 24 GB card."""
    config = _paper(preset, "ml-20m", backbone, 256, 4, 4, **_gpu())
    return config.replace(model=config.model.replace(embedding=embedding, fusion=fusion))


PRESETS: dict[str, RunConfig] = {
    # The HSTU paper's public MovieLens settings (DESIGN §4).
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
    # 4090d profile: MovieLens-20M.
    "hstu-4090d": _4090d("hstu-4090d", "hstu"),
    "sasrec-4090d": _4090d("sasrec-4090d", "sasrec"),
    "hstu-sid-4090d": _4090d("hstu-sid-4090d", "hstu", "prefixN", "sum"),
}


def get_preset(name: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The preset ``name`` with ``overrides`` applied (see :func:`apply_overrides`).

    Raises:
        ConfigError: unknown preset name, unknown key (named in the message) or a bad value.
    """
    try:
        config = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
    return apply_overrides(config, overrides or {})


def preset_table() -> list[dict[str, Any]]:
    """One row per preset (for the README and chapter 06): the settings that tell them apart."""
    rows = []
    for name, c in PRESETS.items():
        m, t = c.model, c.train
        rows.append({
            "preset": name, "dataset": c.dataset, "backbone": m.backbone,
            "embedding": m.embedding + (f"+{m.fusion}" if m.fusion else ""), "dim": m.dim,
            "blocks": m.num_blocks, "heads": m.num_heads, "max_seq_len": m.max_seq_len,
            "batch_size": t.batch_size, "epochs": t.epochs, "amp": t.amp,
        })
    return rows
