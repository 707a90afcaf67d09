"""Profiles, frozen dataclass configs and the cache directory.

A *profile* names a scale: ``cpu`` (MovieLens-100K, small models, the default
used for every committed notebook output) or ``4090d`` (MovieLens-20M at the
papers' sizes). It is chosen by the ``COBRA_PROFILE`` environment variable or
the ``--profile`` CLI flag, never by editing a chapter (DESIGN §5).

Every config is a frozen dataclass. :func:`from_dict` builds one from a plain
mapping (YAML, JSON, ``--set key=value``) and refuses unknown keys by name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

PROFILE_ENV = "COBRA_PROFILE"
HOME_ENV = "COBRA_HOME"


class CobraError(Exception):
    """Base of the errors meant for people: the message says what is wrong and what to do.

    The CLI prints these as one ``error: ...`` line (exit code 2) instead of a traceback.
    """


class ConfigError(CobraError, ValueError):
    """A config that cannot be built: unknown key, bad value or unknown name."""


@dataclass(frozen=True)
class Profile:
    """The scale every chapter and command runs at.

    Attributes:
        name: profile name (``cpu`` or ``4090d``).
        dataset: MovieLens variant the chapters use.
        encoder: item text encoder (see :mod:`cobra.text`).
        device: ``cpu`` or ``cuda``.
        sid_levels: semantic-ID depth ``L``.
        sid_codes: codes per level ``K``.
        max_seq_len: longest user history kept, ``max_seq_len``.
        seed: global seed.
    """

    name: str
    dataset: str
    encoder: str
    device: str
    sid_levels: int = 3
    sid_codes: int = 128
    max_seq_len: int = 200
    seed: int = 42


PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu", dataset="ml-100k", encoder="minilm", device="cpu",
        sid_levels=3, sid_codes=32, max_seq_len=50,
    ),
    "4090d": Profile(
        name="4090d", dataset="ml-20m", encoder="qwen3", device="cuda",
        sid_levels=3, sid_codes=128, max_seq_len=200,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, else ``$COBRA_PROFILE``, else ``cpu``."""
    name = name or os.environ.get(PROFILE_ENV) or "cpu"
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
            f"(set {PROFILE_ENV} or pass --profile)"
        ) from None


def data_home() -> Path:
    """Directory for downloads and caches (git-ignored).

    ``$COBRA_HOME`` if set; else ``data/cache`` in the source checkout this
    package lives in; else ``~/.cache/cobra``.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        path = Path(env).expanduser()
    else:
        repo = Path(__file__).resolve().parent.parent
        path = repo / "data" / "cache" if (repo / "pyproject.toml").exists() else Path.home() / ".cache" / "cobra"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_positive(config: Any, names: tuple[str, ...]) -> None:
    """Refuse (``ConfigError``, field named) any of ``config``'s fields ``names`` that is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")


def require_choice(config: Any, name: str, choices: Iterable[Any], label: str | None = None) -> None:
    """Refuse (``ConfigError``) ``config``'s field ``name`` unless it is one of ``choices``, listed in their order.

    ``label`` names the field in the message (default ``name``): ``unknown <label> <value>; choose one of [...]``.
    """
    value, allowed = getattr(config, name), list(choices)
    if value not in allowed:
        raise ConfigError(f"unknown {label or name} {value!r}; choose one of {allowed}")


def check_model_shape(config: Any, positive: tuple[str, ...]) -> None:
    """The checks every model config shares: ``positive`` fields >= 1, ``dim`` divisible by
    ``num_heads``, ``dropout`` in [0, 1)."""
    require_positive(config, positive)
    if config.dim % config.num_heads:
        raise ConfigError(f"dim={config.dim} must be divisible by num_heads={config.num_heads}")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {config.dropout}")


def from_dict(cls: type[T], values: Mapping[str, Any], *, base: T | None = None) -> T:
    """Build the dataclass ``cls`` from ``values``, refusing unknown keys by name.

    With ``base``, fields missing from ``values`` keep ``base``'s values.
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {cls.__name__}; valid keys: {', '.join(sorted(names))}"
        )
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML mapping from ``path`` into ``cls`` (unknown keys refused)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(values).__name__}")
    return from_dict(cls, values)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["lr=1e-3", "blocks=4"]`` into ``{"lr": 0.001, "blocks": 4}`` (YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        value = yaml.safe_load(raw)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        out[key.strip()] = value
    return out
