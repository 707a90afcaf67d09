"""Property: ``--set`` values either give a valid run config or a ConfigError that names the key.

Random keys among the real fields of a preset (dotted, bare and run keys, the fixed ones too) get random
YAML-ish text; :func:`cobra.config.parse_overrides` + :func:`cobra.presets.get_preset` must never raise
anything but :class:`cobra.config.ConfigError`. No data is loaded and nothing is trained.
"""

from __future__ import annotations

import dataclasses
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobra.config import ConfigError, parse_overrides
from cobra.presets import PRESETS, RunConfig, TrainConfig, get_preset, run_config_from_dict

NAMES = ["hstu-cpu", "hstu-sid-cpu", "cobra-cpu", "tiger-cpu", "sasrec-4090d"]


def _leaves(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaves(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _keys(name: str) -> list[str]:
    config = PRESETS[name]
    run = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("model", "train")]
    dotted = _leaves(TrainConfig, "train.") + _leaves(type(config.model), "model.")
    bare = [k.split(".", 1)[1] for k in dotted if k.count(".") == 1]
    return sorted({*run, *dotted, *bare})


KEYS = {name: _keys(name) for name in NAMES}

INTERESTING = [
    "1", "0", "-1", "-5", "2", "64", "64.0", "1.5", "2.5", "1e-3", "1e12", "1e999", "-1e999", "nan", ".nan", ".inf",
    "-.inf", "true", "false", "yes", "no", "on", "off", "maybe", "null", "~", "", "None", "abc", "[]", "[1, 2]",
    "[0.9, 0.99]", "[0.9]", "[1,", "{a: 1}", "{a: ", "'quoted'", '"1"', "0x10", "0o17", "1_000", "1:20", "2024-01-01",
    "2001-12-14t21:59:43.10-05:00", "../x", "../../x", "/abs/path", "a/b", "a/b/c", "a\\b", "C:\\x", "..", ".",
    "sentence-transformers/all-MiniLM-L6-v2", "tfidf", "minilm", "ml-1m", "cpu", "4090d", "beam", "direct", "mlp",
    "sum", "hstu", "sasrec", "ngram", "prefixN", "bf16", "cuda", "auto", "full_softmax", "catalogue", "kmeans",
    "!!binary aGVsbG8=", "!!python/object:os.system", "&a [*a, *a]", "*a", "|", ">", "- 1", "? a", "%TAG", "@x",
    "`x", "#c", "9" * 30, "-" + "9" * 30, "1:" * 40 + "1", "[" * 200, "\x00", "\t1", " 3 ", "１２",
]
YAMLISH = st.text(alphabet="0123456789.-+eE:,[]{}'\"!&*#|>?%@`~/\\ \tabnlutrxyz_", max_size=14)
VALUES = st.one_of(st.sampled_from(INTERESTING), YAMLISH, st.text(max_size=8),
                   st.integers(min_value=-(2**70), max_value=2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))


@st.composite
def overrides(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    name = draw(st.sampled_from(NAMES))
    pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS[name]), VALUES), min_size=1, max_size=2))
    return name, pairs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides())
def test_set_gives_a_valid_config_or_a_config_error_naming_the_key(case: tuple[str, list[tuple[str, str]]]) -> None:
    name, pairs = case
    try:
        config = get_preset(name, parse_overrides([f"{key}={text}" for key, text in pairs]))
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message, message  # the CLI prints it as one `error:` line
        assert any(key.rsplit(".", 1)[-1] in message for key, _ in pairs), (pairs, message)
        return
    assert isinstance(config, RunConfig)
    assert run_config_from_dict(config.to_dict()) == config  # valid: it survives its own JSON round trip
