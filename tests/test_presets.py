"""Presets: the HSTU paper's settings, overrides refused by name, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cobra.config import ConfigError, parse_overrides
from cobra.presets import (
    PRESETS,
    TrainConfig,
    get_preset,
    load_run_config,
    preset_table,
    run_config_from_dict,
    save_run_config,
)

PAPER = {  # DESIGN §4: (dataset, backbone, blocks, heads, dim)
    "hstu-ml1m": ("ml-1m", "hstu", 2, 1, 50),
    "hstu-large-ml1m": ("ml-1m", "hstu", 8, 2, 50),
    "sasrec-ml1m": ("ml-1m", "sasrec", 2, 1, 50),
    "hstu-ml20m": ("ml-20m", "hstu", 4, 4, 256),
    "hstu-large-ml20m": ("ml-20m", "hstu", 16, 8, 256),
    "sasrec-ml20m": ("ml-20m", "sasrec", 4, 4, 256),
}


def test_every_named_preset_exists() -> None:
    expected = {*PAPER, "hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", "hstu-4090d", "sasrec-4090d", "hstu-sid-4090d"}
    assert expected <= set(PRESETS)
    assert all(PRESETS[name].preset == name for name in PRESETS)
    assert [row["preset"] for row in preset_table()] == list(PRESETS)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_settings(name: str) -> None:
    c = get_preset(name)
    dataset, backbone, blocks, heads, dim = PAPER[name]
    assert (c.dataset, c.model.backbone, c.model.num_blocks, c.model.num_heads, c.model.dim) == PAPER[name]
    assert c.model.max_seq_len == 200 and c.model.dropout == 0.2
    t = c.train
    assert (t.batch_size, t.lr, t.betas, t.weight_decay, t.epochs) == (128, 1e-3, (0.9, 0.98), 0.0, 101)
    assert (t.loss, t.num_negatives, t.temperature) == ("sampled_softmax", 128, 0.05)


def test_profile_presets() -> None:
    for name in ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu"):
        c = get_preset(name)
        assert (c.profile, c.dataset, c.train.device, c.train.amp) == ("cpu", "ml-100k", "cpu", "none")
    sid = get_preset("hstu-sid-cpu")
    assert (sid.model.embedding, sid.model.fusion, sid.uses_sids) == ("prefixN", "sum", True)
    assert not get_preset("hstu-cpu").uses_sids
    for name in ("hstu-4090d", "sasrec-4090d", "hstu-sid-4090d"):
        c = get_preset(name)
        assert (c.profile, c.dataset, c.train.amp, c.model.dim, c.model.num_blocks) == ("4090d", "ml-20m", "bf16",
                                                                                         256, 4)
        assert (c.sid_levels, c.sid_codes, c.encoder) == (3, 128, "qwen3")


def test_overrides_bare_and_dotted() -> None:
    c = get_preset("hstu-cpu", parse_overrides(["lr=3e-4", "model.dim=32", "epochs=2", "betas=[0.9, 0.99]",
                                                "dataset=ml-1m", "fusion=mlp"]))
    assert (c.train.lr, c.model.dim, c.train.epochs, c.train.betas, c.dataset) == (3e-4, 32, 2, (0.9, 0.99),
                                                                                   "ml-1m")
    assert c.model.fusion == "mlp"
    assert PRESETS["hstu-cpu"].train.lr == 1e-3  # the registry is untouched


@pytest.mark.parametrize("key", ["lrr", "train.dim", "model.lr", "optimizer.lr"])
def test_unknown_key_refused_by_name(key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        get_preset("hstu-cpu", {key: 1})


def test_bad_values_refused() -> None:
    with pytest.raises(ConfigError, match="amp"):
        get_preset("hstu-cpu", {"amp": "fp8"})
    with pytest.raises(ConfigError, match="loss"):
        get_preset("hstu-cpu", {"loss": "bpr"})
    with pytest.raises(ConfigError, match="num_items"):
        get_preset("hstu-cpu", {"num_items": 5})
    with pytest.raises(ConfigError, match="backbone"):
        get_preset("hstu-cpu", {"backbone": "gru"})


def test_unknown_preset_name() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'hstu-gpu'.*hstu-cpu"):
        get_preset("hstu-gpu")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name: str, tmp_path: Path) -> None:
    config = get_preset(name)
    save_run_config(config, tmp_path / "config.json")
    assert load_run_config(tmp_path) == config
    assert run_config_from_dict(config.to_dict()) == config


def test_reload_refuses_unknown_keys(tmp_path: Path) -> None:
    values = get_preset("hstu-cpu").to_dict()
    values["train"]["learning_rate"] = 1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        run_config_from_dict(values)
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(tmp_path / "missing")


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="betas"):
        TrainConfig(betas=(0.9,))


def test_generative_presets() -> None:
    for name, kind in (("cobra-cpu", "cobra"), ("tiger-cpu", "tiger")):
        c = get_preset(name)
        assert (c.kind, c.profile, c.dataset, c.encoder, c.sid_levels, c.sid_codes) == (kind, "cpu", "ml-100k",
                                                                                       "minilm", 3, 32)
        assert (c.model.dim, c.model.num_blocks, c.model.max_seq_len, c.train.device) == (64, 2, 50, "cpu")
        assert c.uses_sids and c.uses_text == (kind == "cobra")
        big = get_preset(name.replace("cpu", "4090d"))
        assert (big.kind, big.dataset, big.encoder, big.sid_codes, big.train.amp) == (kind, "ml-20m", "qwen3", 128,
                                                                                     "bf16")
        assert (big.model.dim, big.model.num_blocks, big.model.num_heads, big.model.max_seq_len) == (256, 4, 4, 200)
    cobra = get_preset("cobra-cpu")
    assert (cobra.model.vid_negatives, cobra.model.vid_id_embedding, cobra.model.decode.mode) == ("catalogue", True,
                                                                                                  "beam")
    assert get_preset("tiger-cpu").model.beam_width == 20


def test_nested_and_ambiguous_overrides() -> None:
    c = get_preset("cobra-cpu", parse_overrides(["model.decode.mode=direct", "model.decode.beam_width=8",
                                                 "model.temperature=0.1", "train.temperature=0.2", "dim=32"]))
    assert (c.model.decode.mode, c.model.decode.beam_width, c.model.temperature, c.train.temperature,
            c.model.dim) == ("direct", 8, 0.1, 0.2, 32)
    assert PRESETS["cobra-cpu"].model.decode.mode == "beam"
    with pytest.raises(ConfigError, match="ambiguous.*model.temperature"):
        get_preset("cobra-cpu", {"temperature": 0.1})
    with pytest.raises(ConfigError, match=r"model\.decode\.mod\b"):
        get_preset("cobra-cpu", {"model.decode.mod": "beam"})
    with pytest.raises(ConfigError, match="decode mode"):
        get_preset("cobra-cpu", {"model.decode.mode": "greedy"})
    with pytest.raises(ConfigError, match=r"model\.backbone"):
        get_preset("tiger-cpu", {"model.backbone": "sasrec"})  # TIGER has no backbone choice
    with pytest.raises(ConfigError, match="kind"):
        get_preset("hstu-cpu", {"kind": "cobra"})


def test_old_run_config_without_kind_is_sequential() -> None:
    values = get_preset("hstu-cpu").to_dict()
    del values["kind"], values["text_vectors"]
    assert run_config_from_dict(values) == get_preset("hstu-cpu")
    values = get_preset("cobra-cpu").to_dict()
    values["model"]["decode"]["beams"] = 3
    with pytest.raises(ConfigError, match="beams"):
        run_config_from_dict(values)
    values = get_preset("cobra-cpu").to_dict()
    values["kind"] = "sequential"
    with pytest.raises(ConfigError):
        run_config_from_dict(values)
