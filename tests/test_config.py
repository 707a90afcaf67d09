from dataclasses import dataclass

import pytest

from cobra.config import ConfigError, from_dict, get_profile, load_yaml, parse_overrides


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
