"""Presets: the HSTU paper's settings, overrides refused by name, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cobra.config import ConfigError, parse_overrides
from cobra.model_kinds import MODELS
from cobra.presets import (
    MOVED_LOSS_KEYS,
    PRESETS,
    TrainConfig,
    get_preset,
    load_run_config,
    migrate_run_config,
    preset_table,
    run_config_from_dict,
    save_run_config,
)

PAPER = {  # the HSTU reference configs for ML-1M / ML-20M: (dataset, backbone, blocks, heads, dim)
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
    t, m = c.train, c.model
    assert (t.batch_size, t.lr, t.betas, t.weight_decay, t.epochs) == (128, 1e-3, (0.9, 0.98), 0.0, 101)
    assert (m.loss, m.num_negatives, m.temperature) == ("sampled_softmax", 128, 0.05)


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
    cobra = get_preset("cobra-cpu")  # as the sources describe it: the VID is the projected text vector alone
    assert (cobra.model.vid_negatives, cobra.model.vid_id_embedding, cobra.model.sid_loss,
            cobra.model.decode.mode) == ("catalogue", False, "full-softmax", "beam")
    assert get_preset("tiger-cpu").model.beam_width == 20


def test_the_compared_cpu_presets_share_one_recipe() -> None:
    """Batch, epochs, early stopping, optimiser, windows and seed are the same for every compared model; only the
    tuned values (the same grid for each) and what is intrinsic to a model differ."""
    from cobra.bench.quality import QUALITY_MODELS
    from cobra.presets import CPU_RECIPE, TUNE_GRID, TUNED

    assert set(TUNED) == set(QUALITY_MODELS)
    for name in QUALITY_MODELS:
        c = get_preset(name)
        assert {k: getattr(c.train, k) for k in CPU_RECIPE} == CPU_RECIPE
        assert c.train.seed == TrainConfig().seed and c.train.windows == "all" and c.model.request_time
        assert (c.model.dim, c.model.num_blocks, c.model.num_heads, c.model.max_seq_len) == (64, 2, 1, 50)
        assert {"train.lr": c.train.lr, "model.dropout": c.model.dropout} == TUNED[name]
        assert all(TUNED[name][k] in values for k, values in TUNE_GRID.items())
    losses = {get_preset(n).model.loss for n in ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu")}
    assert losses == {"full_softmax"} and get_preset("cobra-cpu").model.sid_loss == "full-softmax"


def test_nested_overrides_and_bare_keys() -> None:
    c = get_preset("cobra-cpu", parse_overrides(["model.decode.mode=direct", "model.decode.beam_width=8",
                                                 "model.temperature=0.1", "dim=32"]))
    assert (c.model.decode.mode, c.model.decode.beam_width, c.model.temperature, c.model.dim) == (
        "direct", 8, 0.1, 32)
    assert PRESETS["cobra-cpu"].model.decode.mode == "beam"
    # A bare key has one home: the loss settings are the model's for every kind, the loop's are train's.
    assert get_preset("cobra-cpu", {"temperature": 0.1}).model.temperature == 0.1
    c = get_preset("hstu-cpu", {"temperature": 0.1, "num_negatives": 7, "loss": "sampled_softmax", "lr": 0.01})
    assert (c.model.temperature, c.model.num_negatives, c.model.loss, c.train.lr) == (0.1, 7, "sampled_softmax",
                                                                                      0.01)
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


# ---------------------------------------------------------------------------------- --set value checks
def _set(*pairs: str, preset: str = "hstu-cpu"):
    return get_preset(preset, parse_overrides(list(pairs)))


@pytest.mark.parametrize(("pair", "message"), [
    ("train.epochs=1.5", r"train\.epochs must be an integer, got 1\.5"),  # used to train 2 epochs
    ("epochs=true", r"train\.epochs must be an integer, got True"),  # used to train 1
    ("epochs=abc", r"train\.epochs must be an integer, got 'abc'"),
    ("train.epochs=abc", r"train\.epochs must be an integer"),
    ("lr=abc", r"train\.lr must be a finite number"),
    ("lr=true", r"train\.lr must be a finite number"),
    ("compile=maybe", r"train\.compile must be true or false, got 'maybe'"),
    ("compile=1", r"train\.compile must be true or false"),
    ("deterministic=0.5", r"train\.deterministic must be true or false"),
    ("grad_clip=nan", r"train\.grad_clip must be a finite number, got nan"),
    ("grad_clip=.inf", r"train\.grad_clip must be a finite number, got inf"),
    ("lr=1e999", r"train\.lr must be a finite number"),
    ("dropout=nan", r"model\.dropout must be a finite number"),
    ("model.dim=64.0", r"model\.dim must be an integer, got 64\.0.*without a decimal point"),
    ("num_blocks=2.5", r"model\.num_blocks must be an integer, got 2\.5"),
    ("batch_size=1e12", r"train\.batch_size must be an integer"),
    ("fusion=1", r"unknown fusion '1'"),
    ("betas=0.9", r"train\.betas must be a list of 2 numbers"),
    ("betas=[0.9, 0.98, 0.99]", r"train\.betas must be a list of 2 numbers"),
    ("betas=[0.9, 1.0]", r"betas must both be in \[0, 1\)"),
    ("ngram_sizes=2", r"model\.ngram_sizes must be a list of integers"),
    ("ngram_sizes=[1, 2.5]", r"model\.ngram_sizes must be a list of integers"),
    ("ngram_sizes=[]", r"model\.ngram_sizes must be a non-empty list"),
    ("attention_dim=8.0", r"model\.attention_dim must be an integer or null"),
    ("epochs=", r"train\.epochs must be an integer, got None"),
])
def test_set_values_checked_against_the_field_type(pair: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _set(pair)


@pytest.mark.parametrize(("pair", "message"), [
    ("seed=-5", r"seed must be between 0 and 9223372036854775807"),
    ("batch_size=1000000000000", r"batch_size must be between 1 and 1048576 \(2\*\*20, a sanity bound"),
    ("eval_batch_size=2000000", r"eval_batch_size must be between 1 and 1048576"),
    ("epochs=1048577", r"epochs must be between 1 and 1048576"),
    ("model.dim=2097152", r"model\.dim must be between 1 and 1048576 \(2\*\*20, a sanity bound"),
    ("max_seq_len=2097152", r"model\.max_seq_len must be between 1 and 1048576"),
    ("attention_dim=0", r"model\.attention_dim must be between 1 and 1048576"),
    ("sid_table_size=33554432", r"model\.sid_table_size must be between 1 and 16777216 \(2\*\*24"),
    ("sid_codes=0", r"sid_codes must be between 1 and 1048576"),
    ("sid_levels=-1", r"sid_levels must be between 1 and 1048576"),
    ("model.dim=99999999999999999999999", r"model\.dim must be an integer.*64 bits"),
    ("num_threads=-1", r"num_threads must be >= 0"),
])
def test_set_values_out_of_range_refused_before_any_data(pair: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _set(pair)


def test_generative_sections_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"model\.decode\.beam_width must be an integer"):
        _set("model.decode.beam_width=2.5", preset="cobra-cpu")
    with pytest.raises(ConfigError, match=r"model\.decode\.beam_items must be between 1 and 1048576"):
        _set("model.decode.beam_items=2000000", preset="cobra-cpu")
    with pytest.raises(ConfigError, match=r"model\.decode\.filter_history must be true or false"):
        _set("model.decode.filter_history=maybe", preset="cobra-cpu")
    with pytest.raises(ConfigError, match=r"model\.cache_size must be between 1 and 16777216"):
        _set("model.cache_size=99999999", preset="cobra-cpu")
    with pytest.raises(ConfigError, match=r"model\.beam_width must be an integer"):
        _set("beam_width=true", preset="tiger-cpu")
    with pytest.raises(ConfigError, match=r"model\.temperature must be a finite number"):
        _set("model.temperature=nan", preset="cobra-cpu")


def test_profile_and_sid_method_are_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'; choose one of \['4090d', 'cpu'\]"):
        _set("profile=nope")
    with pytest.raises(ConfigError, match=r"unknown sid_method 'x'"):
        _set("sid_method=x")
    assert _set("profile=4090d").profile == "4090d"
    assert _set("sid_method=kmeans").sid_method == "kmeans"


def test_malformed_yaml_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"cannot read the value of 'lr' \('\[1,'\) as YAML"):
        _set("lr=[1,")
    with pytest.raises(ConfigError, match="'model.dim'"):
        _set("model.dim={a: ")


def test_set_still_accepts_what_it_accepted() -> None:
    c = _set("epochs=3", "lr=1e-3", "lr=2", "grad_clip=0", "compile=true", "deterministic=no", "seed=0",
             "warmup_steps=0", "betas=[0, 0.5]", "attention_dim=16", "linear_dim=null", "fusion=null",
             "ffn_dim=~", "sid_levels=2", "ngram_sizes=[1, 2, 3]", "model.sid_levels=2", "embedding=ngram",
             "weight_decay=0.01", "num_threads=0", "encoder=tfidf", "dataset=ml-1m", "profile=cpu",
             "preset=my-run.v2")
    assert (c.train.epochs, c.train.lr, c.train.grad_clip, c.train.compile, c.train.deterministic) == (3, 2, 0,
                                                                                                     True, False)
    assert (c.train.betas, c.model.attention_dim, c.model.linear_dim, c.model.fusion, c.model.ffn_dim) == (
        (0.0, 0.5), 16, None, None, None)
    assert (c.model.ngram_sizes, c.model.sid_levels, c.sid_levels, c.encoder, c.preset) == (
        (1, 2, 3), 2, 2, "tfidf", "my-run.v2")
    assert isinstance(c.train.seed, int) and c.train.seed == 0
    assert _set("fusion=mlp").model.fusion == "mlp"
    # A string field takes the text as typed where YAML reads something else.
    assert _set("preset=2024").preset == "2024"
    assert _set("preset=2024-01-01").preset == "2024-01-01"
    assert _set("model.decode.mode=beam", "model.decode.alpha=1", preset="cobra-cpu").model.decode.alpha == 1


@pytest.mark.parametrize("pair", ["preset=../../x", "preset=a/b", "preset=..", "preset=a\\b", "preset=/tmp/x",
                                  "encoder=../x", "encoder=/abs/model", "encoder=a/b/c", "encoder=owner/..",
                                  "encoder=C:\\x", "dataset=../ml-100k", "dataset=ml/1m", "dataset=~/x",
                                  "preset=.hidden", "encoder=./local"])
def test_names_that_become_paths_are_refused(pair: str) -> None:
    key = pair.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key} '.*' is not a safe name: it becomes part of a file name"):
        _set(pair)


def test_hub_encoder_names_stay_inside_the_cache(tmp_path: Path) -> None:
    c = _set("encoder=sentence-transformers/all-MiniLM-L6-v2", preset="hstu-sid-cpu")
    assert c.encoder == "sentence-transformers/all-MiniLM-L6-v2"
    assert _set("encoder=Qwen/Qwen3-Embedding-0.6B").encoder == "Qwen/Qwen3-Embedding-0.6B"
    # cobra.inputs.semantic_ids names its cache file like this: the one '/' only makes a sub-folder of sid/.
    root = tmp_path / "sid"
    path = root / (f"{c.dataset}__{c.encoder}__{c.sid_method}__L{c.sid_levels}K{c.sid_codes}__abc__f64.npz")
    assert path.resolve().is_relative_to(root.resolve())
    # and default_run_dir: runs/<preset>-<time>
    assert (tmp_path / "runs" / f"{c.preset}-20240101-000000").resolve().is_relative_to((tmp_path / "runs").resolve())


def test_sid_cache_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's codes keep their cache file name; SIDConfig fields outside the name add a suffix when not default."""
    import numpy as np

    from cobra.inputs import sid_cache_path, sid_config_of, text_fingerprint
    from cobra.sid import SIDConfig

    monkeypatch.setenv("COBRA_HOME", str(tmp_path))
    c = get_preset("hstu-sid-cpu")
    vectors = np.ones((3, 2), dtype=np.float32)
    digest = text_fingerprint(vectors).rsplit(":", 1)[1]
    path = sid_cache_path(c.dataset, c.encoder, sid_config_of(c), vectors)
    assert path == tmp_path / "sid" / f"ml-100k__minilm__balanced__L3K32__{digest}__f64.npz"
    other = sid_cache_path(c.dataset, c.encoder, SIDConfig(levels=3, codes=32, seed=1, iters=9), vectors)
    assert other.name == f"ml-100k__minilm__balanced__L3K32__{digest}__iters9__seed1__f64.npz"


def test_reloaded_configs_are_type_checked() -> None:
    values = get_preset("hstu-cpu").to_dict()
    values["train"]["epochs"] = 1.5
    with pytest.raises(ConfigError, match=r"TrainConfig\.epochs must be an integer"):
        run_config_from_dict(values)
    values = get_preset("hstu-cpu").to_dict()
    values["preset"] = "../../elsewhere"
    with pytest.raises(ConfigError, match="preset '../../elsewhere' is not a safe name"):
        run_config_from_dict(values)
    values = get_preset("cobra-cpu").to_dict()
    values["model"]["decode"]["beam_width"] = "4"
    with pytest.raises(ConfigError, match=r"DecodeConfig\.beam_width must be an integer"):
        run_config_from_dict(values)


def test_direct_construction_is_checked() -> None:
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        TrainConfig(epochs=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed must be between 0"):
        TrainConfig(seed=-5)
    with pytest.raises(ConfigError, match=r"model\.dim must be an integer"):
        get_preset("hstu-cpu").replace(model=dataclasses.replace(get_preset("hstu-cpu").model, dim=64.0))
    with pytest.raises(ConfigError, match="preset '../x' is not a safe name"):
        get_preset("hstu-cpu").replace(preset="../x")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_passes_the_new_checks(name: str) -> None:
    config = PRESETS[name]
    assert dataclasses.replace(config) == config
    assert get_preset(name, parse_overrides([f"seed={config.train.seed}"])) == config


# ------------------------------------------------------------------------- one owner per setting, old files
def test_train_and_model_sections_share_no_key() -> None:
    """So a bare --set key has one home (no "ambiguous key" rule), and train holds only the loop."""
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not train & set(MOVED_LOSS_KEYS)
    for kind in MODELS.values():
        assert not train & {f.name for f in dataclasses.fields(kind.config)}, kind.config.__name__


def test_loss_keys_under_train_name_their_new_home() -> None:
    with pytest.raises(ConfigError, match=r"'train\.temperature'.*set model\.temperature instead"):
        get_preset("hstu-cpu", {"train.temperature": 0.1})
    with pytest.raises(ConfigError, match=r"'train\.num_negatives'.*set model\.num_negatives instead"):
        get_preset("cobra-cpu", {"train.num_negatives": 8})
    with pytest.raises(ConfigError, match=r"'train\.loss'.*a 'tiger' model has no loss"):
        get_preset("tiger-cpu", {"train.loss": "full_softmax"})
    with pytest.raises(ConfigError, match="unknown key 'temperature'"):
        get_preset("tiger-cpu", {"temperature": 0.1})  # TIGER's code-level cross entropy has no temperature
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        get_preset("hstu-cpu", {"model.temperature": 0.0})
    with pytest.raises(ConfigError, match="num_negatives must be >= 1"):
        get_preset("hstu-cpu", {"num_negatives": 0})


def _old_layout(name: str, **train_loss) -> dict:
    """A preset's config as ``config.json`` held it before the loss settings moved to the model section.

    Then ``train`` had ``loss`` / ``num_negatives`` / ``temperature`` (defaults ``sampled_softmax``, 128, 0.05;
    only sequential models read them), COBRA's model section lacked ``attention_dim`` / ``linear_dim`` and
    TIGER's lacked ``attn_norm`` / ``use_position_bias``.
    """
    values = get_preset(name).to_dict()
    model, train = values["model"], values["train"]
    if values["kind"] == "sequential":
        train.update({k: model.pop(k) for k in MOVED_LOSS_KEYS})
    else:
        train.update({"loss": "sampled_softmax", "num_negatives": 128, "temperature": 0.05})
    dropped = {"cobra": ("attention_dim", "linear_dim"), "tiger": ("attn_norm", "use_position_bias")}
    for key in dropped.get(values["kind"], ()):
        del model[key]
    del train["windows"], model["request_time"]  # added later (ADDED_KEYS)
    train.update(train_loss)
    return values


def _as_old_runs_trained(name: str):
    """The preset with the values an old file's run was trained with: one window per user, no request time."""
    return get_preset(name, {"train.windows": "last", "model.request_time": False})


@pytest.mark.parametrize("name", ["hstu-cpu", "sasrec-4090d", "hstu-sid-cpu", "cobra-cpu", "tiger-cpu"])
def test_old_config_json_layout_is_migrated(name: str, tmp_path: Path) -> None:
    old = _old_layout(name)
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert load_run_config(tmp_path) == _as_old_runs_trained(name)
    migrated = migrate_run_config(old)
    assert not set(MOVED_LOSS_KEYS) & set(migrated["train"])
    assert "loss" in old["train"]  # the argument is left alone
    current = get_preset(name).to_dict()
    assert migrate_run_config(current) == current  # the current layout passes through unchanged


def test_old_sequential_loss_settings_move_with_their_values() -> None:
    old = _old_layout("hstu-cpu", loss="sampled_softmax", num_negatives=7, temperature=0.2)
    m = run_config_from_dict(old).model
    assert (m.loss, m.num_negatives, m.temperature) == ("sampled_softmax", 7, 0.2)
    old = _old_layout("cobra-cpu", num_negatives=7, temperature=0.2)  # unused by COBRA: dropped
    assert run_config_from_dict(old) == _as_old_runs_trained("cobra-cpu")
    both = get_preset("hstu-cpu").to_dict()
    both["train"]["temperature"] = 0.2  # a hand-edited file with two values for one setting
    with pytest.raises(ConfigError, match=r"train\.temperature and model\.temperature"):
        run_config_from_dict(both)
