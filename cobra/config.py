"""Profiles, frozen dataclass configs and the cache directory.

A *profile* names a scale: ``cpu`` (MovieLens-100K, small models, the default
used for every committed notebook output) or ``4090d`` (MovieLens-20M at the
papers' sizes). It is chosen by the ``COBRA_PROFILE`` environment variable or
the ``--profile`` CLI flag, never by editing a chapter.

Every config is a frozen dataclass. :func:`from_dict` builds one from a plain
mapping (YAML, JSON, ``--set key=value``), refuses unknown keys by name and checks
every value against the field's annotation (:func:`check_value`: no float or bool
for an ``int``, no string for a number, finite floats only, ``X | None``, tuples).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import re
import tempfile
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

PROFILE_ENV = "COBRA_PROFILE"
DATASET_ENV = "COBRA_DATASET"  # replaces the profile's dataset (e.g. ml-20m-synthetic where ml-20m cannot be fetched)
MAX_EPOCHS_ENV = "COBRA_MAX_EPOCHS"  # caps every preset's epochs (smoke tests, dry runs)
ENCODER_ENV = "COBRA_ENCODER"  # replaces the profile's encoder (e.g. provided: the dataset's own item vectors)
HOME_ENV = "COBRA_HOME"
INT64_MAX = 2**63 - 1  # no config int may leave the 64-bit range (torch and numpy take int64)
MAX_NAME_LENGTH = 100  # names that become parts of file names under the cache


class CobraError(Exception):
    """Base of the errors meant for people: the message says what is wrong and what to do.

    The CLI prints these as one ``error: ...`` line (exit code 2) instead of a traceback.
    """


class ConfigError(CobraError, ValueError):
    """A config that cannot be built: unknown key, bad value or unknown name."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long command: ``str(err)`` is one line saying how to resume (the CLI prints it, exit 130)."""


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
    """Return the profile called ``name``, else ``$COBRA_PROFILE``, else ``cpu``.

    ``$COBRA_DATASET`` and ``$COBRA_ENCODER``, when set, replace the profile's dataset and encoder: the same
    code paths and sizes on other data, e.g. ``COBRA_PROFILE=4090d COBRA_DATASET=ml-20m-synthetic
    COBRA_ENCODER=provided`` runs the full-scale profile on the MovieLens-20M-shaped stand-in.
    """
    name = name or os.environ.get(PROFILE_ENV) or "cpu"
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
            f"(set {PROFILE_ENV} or pass --profile)"
        ) from None
    changes = {field: os.environ[env] for field, env in (("dataset", DATASET_ENV), ("encoder", ENCODER_ENV))
               if os.environ.get(env)}
    if changes:
        profile = dataclasses.replace(profile, **changes)
        for field in changes:
            require_safe_name(profile, field, hub=field == "encoder")
    return profile


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


def atomic_write(path: str | Path, content: str | bytes | Callable[[Path], object]) -> Path:
    """Write ``path`` all at once, so a reader (or a crash) never sees half a file.

    ``content`` is text, bytes, or a function that writes a given temporary path (``torch.save``,
    ``np.savez``, a download loop). The temporary file sits next to ``path``, is fsynced, then renamed
    onto ``path`` with ``os.replace``, and the directory is fsynced so the rename survives a power cut.
    On any error the temporary file is removed and ``path`` is left as it was.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        else:
            content(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)  # mkstemp's 0600 would hide caches from other users of a shared machine
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # not every platform can open a directory
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
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


def require_range(config: Any, names: Iterable[str], low: int, high: int, *, prefix: str = "",
                  note: str = "") -> None:
    """Refuse (``ConfigError``, field named as ``prefix + name``) any of ``config``'s fields ``names`` outside
    ``[low, high]``; ``None`` (an unset optional field) passes. ``note`` explains the bound in the message."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{prefix}{name} must be between {low} and {high}{note}, got {_show(value, kind=False)}")


_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def require_safe_name(config: Any, name: str, *, hub: bool = False) -> None:
    """Refuse (``ConfigError``) ``config``'s field ``name`` unless it is a name that is safe in a file name.

    Such names (preset, dataset, encoder) become parts of paths under :func:`data_home`, so they may only
    hold letters, digits, ``.``, ``_`` and ``-``, start with a letter or digit, never hold ``..``, and are at
    most :data:`MAX_NAME_LENGTH` characters: no ``/``, ``\\``, absolute path or parent step can take a file
    outside the cache. With ``hub``, one ``/`` between two such parts is allowed, the ``owner/model`` form of a
    Hugging Face model id (``sentence-transformers/all-MiniLM-L6-v2``).
    """
    value = getattr(config, name)
    parts = value.split("/") if hub and isinstance(value, str) else [value]
    if (isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and len(parts) <= 2
            and all(_NAME_PART.fullmatch(part) and ".." not in part for part in parts)):
        return
    allowed = "letters, digits, '.', '_' and '-' (starting with a letter or digit, no '..')"
    shape = "a name or one owner/model id" if hub else "a plain name (no '/' or '\\')"
    raise ConfigError(f"{name} {value!r:.80} is not a safe name: it becomes part of a file name under the cache, "
                      f"so it must be {shape} of {allowed}, at most {MAX_NAME_LENGTH} characters")


# ------------------------------------------------------------------------------------------- value types
_REFUSED = object()  # what _conform returns for a value the annotation does not accept
_UNION_TYPES = (typing.Union, types.UnionType)


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)`` (cached); ``{}`` where an annotation cannot be resolved."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a forward reference to a name the module lacks: leave those fields unchecked
        return {}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _conform(hint: Any, value: Any) -> Any:
    """``value`` as the annotation ``hint`` accepts it (lists become tuples), else ``_REFUSED``.

    Handles ``int`` (no bool, no float, 64-bit), ``float`` (int or float, no bool, finite), ``bool``, ``str``,
    ``None``, ``X | Y``, ``Literal[...]``, ``tuple[X, ...]`` / ``tuple[X, Y]``, dataclasses (an instance or a
    mapping) and other classes (``isinstance``); anything else (``Any``, ``list[int]`` ...) is not checked.
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is None or hint is type(None):
        return value if value is None else _REFUSED
    if origin in _UNION_TYPES:
        for arg in typing.get_args(hint):
            out = _conform(arg, value)
            if out is not _REFUSED:
                return out
        return _REFUSED
    if origin is Literal:
        return value if any(type(value) is type(a) and value == a for a in typing.get_args(hint)) else _REFUSED
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _REFUSED
        args = typing.get_args(hint)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            return _REFUSED
        items = [_conform(arg, item) for arg, item in zip(args, value, strict=True)]
        return _REFUSED if any(item is _REFUSED for item in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _REFUSED
    if hint is int:
        return value if _is_int(value) and -INT64_MAX - 1 <= value <= INT64_MAX else _REFUSED
    if hint is float:
        if _is_int(value):
            return value if abs(value) <= INT64_MAX else _REFUSED
        return value if isinstance(value, numbers.Real) and not isinstance(value, bool) \
            and math.isfinite(value) else _REFUSED
    if hint is str:
        return value if isinstance(value, str) else _REFUSED
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return value if isinstance(value, (hint, Mapping)) else _REFUSED
    if isinstance(hint, type) and hint is not object and origin is None:
        return value if isinstance(value, hint) else _REFUSED
    return value


def describe(hint: Any) -> str:
    """The annotation ``hint`` in words, for messages: ``an integer``, ``a finite number or null`` ..."""
    origin = typing.get_origin(hint)
    if hint is None or hint is type(None):
        return "null"
    if origin in _UNION_TYPES:
        return " or ".join(dict.fromkeys(describe(arg) for arg in typing.get_args(hint)))
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}" if len(set(args)) == 1 else \
            f"a list [{', '.join(describe(a) for a in args)}]"
    words = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    if hint in words:
        return words[hint]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return f"a {hint.__name__} mapping"
    return f"a {getattr(hint, '__name__', hint)}"


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(hint, describe(hint))


def _show(value: Any, kind: bool = True) -> str:
    """``value`` for a message: its repr (cut at 60 characters) and, with ``kind``, what it is."""
    if _is_int(value) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    kinds = {bool: "a bool", int: "an integer", float: "a float", str: "a string", type(None): "null",
             list: "a list", tuple: "a list", dict: "a mapping"}
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    word = next((word for cls, word in kinds.items() if type(value) is cls), type(value).__name__)
    return text if not kind or word == "null" else f"{text} ({word})"


def check_value(hint: Any, value: Any, name: str, *, raw: str | None = None) -> Any:
    """``value`` checked against the field annotation ``hint``; ``ConfigError`` naming ``name`` otherwise.

    Returns the value as the field takes it (a list becomes a tuple for a tuple field). ``raw`` is the text the
    value was read from (``--set key=raw``): a field that takes strings gets that text when YAML read it as
    something else (``preset=2024`` is the string ``"2024"``, not an integer).
    """
    out = _conform(hint, value)
    if out is _REFUSED and raw is not None and not isinstance(value, str):
        out = _conform(hint, raw.strip())
    if out is not _REFUSED:
        return out
    hint_words = describe(hint)
    extra = ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and "integer" in hint_words:
        extra = "; write a whole number without a decimal point or exponent"
    elif _is_int(value) and value.bit_length() > 63 and ("integer" in hint_words or "number" in hint_words):
        extra = f"; numbers must lie within 64 bits (at most {INT64_MAX} in size)"
    raise ConfigError(f"{name} must be {hint_words}, got {_show(value)}{extra}")


def check_fields(config: Any, prefix: str = "") -> None:
    """Check every field of the dataclass instance ``config`` against its annotation (nested ones too),
    naming a bad one as ``prefix + name`` (``ConfigError``)."""
    hints = field_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in hints:
            check_value(hints[f.name], value, prefix + f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, f"{prefix}{f.name}.")


def from_dict(cls: type[T], values: Mapping[str, Any], *, base: T | None = None) -> T:
    """Build the dataclass ``cls`` from ``values``, refusing unknown keys by name and values of the wrong type.

    Every value is checked against the field's annotation (:func:`check_value`; a bad one is named as
    ``Class.field``). With ``base``, fields missing from ``values`` keep ``base``'s values.
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {cls.__name__}; valid keys: {', '.join(sorted(names))}"
        )
    hints = field_hints(cls)
    values = {k: check_value(hints[k], v, f"{cls.__name__}.{k}") if k in hints else v for k, v in values.items()}
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from None


def _yaml_float(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string: such a string as a float, anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML mapping from ``path`` into ``cls`` (unknown keys and values of the wrong type refused)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML ({_yaml_problem(err)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(values).__name__}")
    hints = field_hints(cls)
    values = {k: _yaml_float(v) if k in hints and _conform(hints[k], v) is _REFUSED else v for k, v in values.items()}
    return from_dict(cls, values)


def _yaml_problem(err: Exception) -> str:
    return " ".join(str(getattr(err, "problem", None) or err or type(err).__name__).split())[:120]


class Overrides(dict):
    """What :func:`parse_overrides` returns: key -> parsed value (a plain ``dict`` to every reader).

    ``raw`` maps each key to the text after ``=``: :func:`cobra.presets.apply_overrides` gives a string field
    that text when YAML read it as something else (``--set preset=2024``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: dict[str, str] = {}


def parse_overrides(pairs: list[str]) -> Overrides:
    """Turn ``["lr=1e-3", "blocks=4"]`` into ``{"lr": 0.001, "blocks": 4}`` (YAML scalars).

    A value YAML cannot read is refused with the key named (``ConfigError``); types are checked later,
    against the field the key names (:func:`cobra.presets.apply_overrides`).
    """
    out = Overrides()
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw)
        except Exception as err:  # YAMLError, and ValueError / RecursionError from odd scalars and nesting
            raise ConfigError(f"cannot read the value of {key!r} ({raw!r:.60}) as YAML: {_yaml_problem(err)}; "
                              "quote a string that holds YAML syntax") from None
        out[key] = _yaml_float(value)
        out.raw[key] = raw
    return out
