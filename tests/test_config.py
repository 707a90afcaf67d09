import math
from dataclasses import dataclass
from typing import Literal

import pytest

from cobra.config import (
    ConfigError,
    check_value,
    from_dict,
    get_profile,
    load_yaml,
    parse_overrides,
    require_safe_name,
)


@dataclass(frozen=True)
class Toy:
    lr: float = 1e-3
    blocks: int = 2


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="'lrr'"):
        from_dict(Toy, {"lrr": 0.1})


def test_from_dict_with_base_keeps_other_fields():
    cfg = from_dict(Toy, {"blocks": 4}, base=Toy(lr=0.5))
    assert cfg == Toy(lr=0.5, blocks=4)


def test_yaml_round_trip_and_errors(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("lr: 0.01\nblocks: 3\n")
    assert load_yaml(Toy, path) == Toy(0.01, 3)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(Toy, path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(Toy, tmp_path / "missing.yml")


def test_overrides_parse_yaml_scalars():
    assert parse_overrides(["lr=1e-3", "blocks=4", "name=hstu"]) == {"lr": 1e-3, "blocks": 4, "name": "hstu"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["oops"])


def test_profiles(monkeypatch):
    monkeypatch.delenv("COBRA_PROFILE", raising=False)
    assert get_profile().name == "cpu"
    monkeypatch.setenv("COBRA_PROFILE", "4090d")
    assert get_profile().dataset == "ml-20m"
    assert get_profile("cpu").dataset == "ml-100k"
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("tpu")


# ------------------------------------------------------------------------------------- value types
@dataclass(frozen=True)
class Typed:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    name: str = "x"
    width: int | None = None
    label: str | None = None
    pair: tuple[float, float] = (0.9, 0.98)
    sizes: tuple[int, ...] = (1, 2)
    mode: Literal["a", "b"] = "a"


@pytest.mark.parametrize(("key", "value", "words"), [
    ("count", 1.5, "integer"), ("count", True, "integer"), ("count", "3", "integer"), ("count", None, "integer"),
    ("rate", "0.1", "finite number"), ("rate", True, "finite number"), ("rate", math.nan, "finite number"),
    ("rate", math.inf, "finite number"), ("flag", "maybe", "true or false"), ("flag", 1, "true or false"),
    ("name", 3, "string"), ("width", 2.0, "integer or null"), ("label", 1, "string or null"),
    ("pair", [0.9], "list of 2 numbers"), ("pair", 0.9, "list of 2 numbers"), ("sizes", [1, 2.5], "integers"),
    ("mode", "c", "one of"), ("count", 2**70, "64 bits"),
])
def test_from_dict_refuses_wrong_types_naming_the_field(key, value, words):
    with pytest.raises(ConfigError, match=rf"Typed\.{key} must be .*{words}"):
        from_dict(Typed, {key: value})


def test_from_dict_accepts_what_the_annotations_allow():
    cfg = from_dict(Typed, {"count": 3, "rate": 2, "flag": True, "name": "y", "width": None, "label": None,
                            "pair": [0.5, 1], "sizes": [], "mode": "b"})
    assert cfg == Typed(3, 2, True, "y", None, None, (0.5, 1), (), "b")
    assert isinstance(cfg.pair, tuple) and isinstance(cfg.sizes, tuple)
    assert from_dict(Typed, {"width": 4, "label": "z"}) == Typed(width=4, label="z")


def test_check_value_messages():
    with pytest.raises(ConfigError, match=r"^train\.epochs must be an integer, got 'abc' \(a string\)$"):
        check_value(int, "abc", "train.epochs")
    with pytest.raises(ConfigError, match="without a decimal point"):
        check_value(int, 64.0, "model.dim")
    assert check_value(str, 2024, "preset", raw="2024") == "2024"  # a string field takes the text as typed
    assert check_value(str | None, None, "fusion", raw="null") is None
    with pytest.raises(ConfigError, match="epochs"):
        check_value(int, 1.5, "epochs", raw="1.5")


def test_overrides_keep_the_raw_text_and_refuse_bad_yaml():
    out = parse_overrides(["preset=2024", " lr = 1e-3", "x=nan"])
    assert out == {"preset": 2024, "lr": 1e-3, "x": out["x"]} and math.isnan(out["x"])
    assert out.raw["preset"] == "2024"
    for bad in ("lr=[1,", "lr={a: ", "lr=@x", "lr=" + "[" * 2000, "lr=\x00"):
        with pytest.raises(ConfigError, match="'lr'"):
            parse_overrides([bad])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([" =1"])


def test_yaml_file_values_are_type_checked(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("lr: 1e-3\nblocks: 3\n")  # YAML 1.1 reads 1e-3 as a string: still a float here
    assert load_yaml(Toy, path) == Toy(1e-3, 3)
    path.write_text("blocks: 2.5\n")
    with pytest.raises(ConfigError, match=r"Toy\.blocks must be an integer"):
        load_yaml(Toy, path)
    path.write_text("blocks: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Toy, path)


@dataclass(frozen=True)
class Named:
    name: str


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/abs", "a\\b", "a..b", ".hidden", "-x", "", "a b", "x" * 101,
                                  "a:b", "~x", "a\nb"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ConfigError, match="name .* not a safe name"):
        require_safe_name(Named(name), "name")


def test_safe_names_and_hub_ids():
    for name in ("ml-100k", "hstu-cpu", "all-MiniLM-L6-v2", "v1.2_x"):
        require_safe_name(Named(name), "name")
    require_safe_name(Named("sentence-transformers/all-MiniLM-L6-v2"), "name", hub=True)
    with pytest.raises(ConfigError, match="not a safe name"):
        require_safe_name(Named("sentence-transformers/all-MiniLM-L6-v2"), "name")
    for name in ("a/b/c", "../x", "a/..", "/abs/x", "a/", "/x", "owner/.x", "a\\b/c"):
        with pytest.raises(ConfigError, match="not a safe name"):
            require_safe_name(Named(name), "name", hub=True)


def test_atomic_write_replaces_whole_and_leaves_nothing_behind(tmp_path):
    from cobra.config import atomic_write

    target = tmp_path / "sub" / "f.json"
    assert atomic_write(target, "one") == target and target.read_text() == "one"
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    atomic_write(target, lambda tmp: tmp.write_text("three"))
    assert target.read_text() == "three"

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "three"  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]  # no temporary file left
