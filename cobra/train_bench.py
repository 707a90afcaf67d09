"""Training benchmarks: ``python -m cobra bench speed`` and ``python -m cobra bench quality``.

Explained in chapter 06 (book/06_hstu.py); the quality table of all models, the convergence curves
and the COBRA decoding ablation are chapter 10's (book/10_experiments.py).

* :func:`bench_speed` -- training throughput (tokens/s) and peak memory of HSTU and SASRec at
  ``T = 50, 100, 200, 400`` with ``D = 64``, side by side in one process, a few steps each, so the
  cost curve in ``T`` is visible. On CUDA it also trains the ``4090d`` presets of HSTU, COBRA and
  TIGER at their batch sizes (bf16 autocast) and reports ``torch.cuda.max_memory_allocated`` against
  the 24 GB budget, and the HSTU preset's tokens/s eager and under ``torch.compile``; on CPU it
  *estimates* the memory (see :func:`memory_estimate`) and says so.
* :func:`bench_quality` -- mean and standard deviation over seeds of HR@10 and NDCG@10 on
  MovieLens-100K for a list of presets (any kind: HSTU, SASRec, PrefixN, TIGER, COBRA), with the
  ``popular`` baseline for reference, and each run's validation NDCG@10 per epoch (read from its
  ``metrics.jsonl``) so convergence can be plotted (chapter 10).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the measured steps. CPU has no such
counter, so there we report an estimate: the bytes of the tensors autograd saves for the backward
pass (distinct storages, counted with ``torch.autograd.graph.saved_tensors_hooks``) plus parameters,
gradients and the two AdamW moments. The result says which method it used (``memory_method``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cobra.bench import check_out_file, mean_std, write_result
from cobra.config import ConfigError, data_home, parse_overrides
from cobra.data import Batch
from cobra.model_kinds import MODELS, SequentialModel
from cobra.models import ModelConfig
from cobra.presets import RunConfig, get_preset
from cobra.sid import add_uniqueness
from cobra.train import Interrupted, TrainModule, autocast, build_model, fit, make_optimizer, train_step

SPEED_LENGTHS = (50, 100, 200, 400)
GPU_BUDGET_GB = 24.0
GPU_PRESETS = ("hstu-4090d", "cobra-4090d", "tiger-4090d")
QWEN3_DIM = 1024  # width of Qwen3-Embedding-0.6B, the 4090d presets' encoder


def synthetic_batch(batch_size: int, seq_len: int, num_items: int, seed: int = 0) -> Batch:
    """A full-length training batch of random items with increasing timestamps.

    Returns:
        Batch with ids/timestamps/next_ids (B, T) int64 (no padding), lengths (B,) = T, users (B,).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, num_items + 1, (batch_size, seq_len + 1), generator=g)  # (B, T+1)
    gaps = torch.randint(0, 86_400, (batch_size, seq_len + 1), generator=g)  # (B, T+1)
    stamps = 1_000_000_000 + gaps.cumsum(1)  # (B, T+1)
    return Batch(ids=ids[:, :-1].contiguous(), timestamps=stamps[:, :-1].contiguous(),
                 lengths=torch.full((batch_size,), seq_len, dtype=torch.int64),
                 users=torch.arange(1, batch_size + 1), next_ids=ids[:, 1:].contiguous())


def memory_estimate(trainer: TrainModule, batch: Batch, device: torch.device, amp: str = "none") -> int:
    """Bytes: saved-for-backward activations of one step + parameters, gradients and 2 AdamW moments."""
    seen: dict[tuple[int, str], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), str(t.device))] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, amp):
        loss = trainer(batch.to(device))
    del loss
    params = sum(p.numel() * p.element_size() for p in trainer.parameters())
    return sum(seen.values()) + 4 * params


def _measure(trainer: TrainModule, batch: Batch, steps: int, device: torch.device, amp: str,
             compile: bool = False) -> dict[str, Any]:
    """Train ``steps`` steps on one batch (after one warm-up step, which also compiles): tokens/s and peak memory."""
    optimizer = make_optimizer(trainer, 1e-3, (0.9, 0.98), 0.0)
    loss_fn = torch.compile(trainer) if compile else trainer
    batch = batch.to(device)
    train_step(trainer, batch, optimizer, loss_fn, amp=amp, grad_clip=1.0, device=device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(trainer, batch, optimizer, loss_fn, amp=amp, grad_clip=1.0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak, method = torch.cuda.max_memory_allocated(device), "cuda.max_memory_allocated"
    else:
        peak, method = memory_estimate(trainer, batch, device, amp), "estimate (saved tensors + 4x params)"
    seconds = time.perf_counter() - t0
    tokens = int(batch.lengths.sum()) * steps
    return {"tokens_per_second": round(tokens / seconds, 1), "seconds_per_step": round(seconds / steps, 4),
            "peak_memory_mb": round(peak / 2**20, 1), "memory_method": method}


def bench_speed(
    lengths: Sequence[int] = SPEED_LENGTHS,
    dim: int = 64,
    batch_size: int | None = None,
    steps: int | None = None,
    num_items: int = 1682,
    loss: str = "full_softmax",
    device: str | None = None,
    gpu_presets: Sequence[str] = GPU_PRESETS,
    verbose: bool = False,
) -> dict[str, Any]:
    """Training throughput and peak memory of HSTU and SASRec at several sequence lengths.

    Both backbones get the same embeddings, loss, batch and optimiser (2 blocks, 1 head, ``dim``);
    only the block differs. Rows are full length (no padding), so tokens = ``B * T`` per step.

    Args:
        lengths: sequence lengths ``T``.
        dim: model dim ``D``.
        batch_size: ``B`` (default 32 on CPU, 128 on CUDA).
        steps: measured steps per configuration after one warm-up step (default 3 on CPU, 20 on CUDA).
        num_items: ``N`` of the synthetic catalogue (ML-100K's by default).
        loss: key of :data:`cobra.losses.LOSSES`.
        device: ``cpu`` / ``cuda`` (default CUDA when available).
        gpu_presets: presets whose peak memory is measured at their own batch size on CUDA (estimated on
            CPU, see :func:`preset_memory`); on CUDA the first is also trained under ``torch.compile``.
        verbose: print one line per configuration.

    Returns:
        dict with device, dim, batch_size, steps, rows (one per (model, T): model, T, tokens_per_second,
        seconds_per_step, peak_memory_mb, memory_method), ratios (HSTU / SASRec tokens/s per T) and
        ``presets`` (one :func:`preset_memory` row per ``gpu_presets`` entry) and, on CUDA, ``compile``
        (the first preset's tokens/s eager and compiled, and their ratio).
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    batch_size = batch_size or (128 if cuda else 32)
    steps = steps or (20 if cuda else 3)
    amp = "bf16" if cuda else "none"
    rows: list[dict[str, Any]] = []
    for T in lengths:
        batch = synthetic_batch(batch_size, T, num_items, seed=T)
        for backbone in ("hstu", "sasrec"):
            torch.manual_seed(0)
            config = ModelConfig(num_items=num_items, backbone=backbone, dim=dim, num_blocks=2, num_heads=1,
                                 max_seq_len=T, dropout=0.2)
            trainer = TrainModule(SequentialModel(config, loss=loss)).to(dev)
            row = {"model": backbone, "T": T, **_measure(trainer, batch, steps, dev, amp)}
            rows.append(row)
            if verbose:
                print(f"{backbone:>6} T={T:<4} {row['tokens_per_second']:>12,.0f} tok/s "
                      f"{row['peak_memory_mb']:>9,.1f} MB")
            del trainer
            if cuda:
                torch.cuda.empty_cache()
    by = {(r["model"], r["T"]): r for r in rows}
    ratios = {str(T): round(by["hstu", T]["tokens_per_second"] / by["sasrec", T]["tokens_per_second"], 3)
              for T in lengths}
    presets = [preset_memory(name, device=str(dev), steps=steps) for name in gpu_presets]
    if verbose:
        for p in presets:
            print(f"{p['preset']:>12} B={p['batch_size']:<4} {p['peak_memory_gb']:>6.2f} GB "
                  f"({'measured' if p['measured'] else 'estimated'}; budget {GPU_BUDGET_GB:.0f} GB)")
    out = {"device": str(dev), "dim": dim, "batch_size": batch_size, "steps": steps, "loss": loss,
           "amp": amp, "rows": rows, "hstu_over_sasrec_tokens_per_second": ratios, "presets": presets}
    if cuda and gpu_presets:
        compiled = preset_memory(gpu_presets[0], device=str(dev), steps=steps, compile=True)
        eager = presets[0]["tokens_per_second"]
        out["compile"] = {"preset": gpu_presets[0], "eager_tokens_per_second": eager,
                          "compiled_tokens_per_second": compiled["tokens_per_second"],
                          "compiled_over_eager": round(compiled["tokens_per_second"] / eager, 3),
                          "compiled_peak_memory_gb": compiled["peak_memory_gb"]}
    return out


def synthetic_inputs(config: RunConfig, num_items: int, text_dim: int = QWEN3_DIM, seed: int = 0
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Random semantic-ID codes and text vectors of the shapes ``config``'s model needs (for memory and speed).

    Returns:
        codes (N, L + 1) int64 (``config.sid_levels`` random codes below ``config.sid_codes`` plus the
        uniqueness column) or None, and text vectors (N, ``text_dim``) float32 unit rows or None.
    """
    rng = np.random.default_rng(seed)
    codes = text = None
    if config.uses_sids:
        codes = add_uniqueness(rng.integers(0, config.sid_codes, (num_items, config.sid_levels)))
    if config.uses_text:
        text = rng.standard_normal((num_items, text_dim)).astype(np.float32)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
    return codes, text


def preset_memory(name: str = "hstu-4090d", batch_size: int | None = None, num_items: int = 26_744,
                  device: str | None = None, steps: int = 5, estimate_batch: int = 4,
                  compile: bool = False) -> dict[str, Any]:
    """Peak training memory of preset ``name`` (any kind) at ``batch_size`` (default the preset's).

    ML-20M has 26,744 items; SID codes and text vectors are random, of the preset's shapes
    (:func:`synthetic_inputs`), so no dataset or encoder is needed.

    On CUDA: measured (``max_memory_allocated``, with the preset's autocast, ``torch.compile`` when
    ``compile``) together with tokens/s. On CPU: estimated without the GPU -- saved-for-backward bytes
    of a float32 step at ``estimate_batch`` rows, scaled linearly to ``batch_size``, plus parameters,
    gradients and the AdamW moments. bf16 autocast stores many of those activations in half the
    bytes, so the float32 figure is an upper estimate.
    """
    config = get_preset(name)
    config = config.replace(model=config.model.replace(num_items=num_items))
    batch_size = batch_size or config.train.batch_size
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    T = config.model.max_seq_len
    torch.manual_seed(0)
    trainer = TrainModule(build_model(config, *synthetic_inputs(config, num_items))).to(dev)
    out: dict[str, Any] = {"preset": name, "kind": config.kind, "batch_size": batch_size, "T": T,
                           "num_items": num_items, "budget_gb": GPU_BUDGET_GB}
    if dev.type == "cuda":
        row = _measure(trainer, synthetic_batch(batch_size, T, num_items), steps, dev, config.train.amp, compile)
        out.update(row, amp=config.train.amp, compile=compile, peak_memory_gb=round(row["peak_memory_mb"] / 1024, 2),
                   measured=True)
    else:
        params = sum(p.numel() * p.element_size() for p in trainer.parameters())
        small = memory_estimate(trainer, synthetic_batch(estimate_batch, T, num_items), dev) - 4 * params
        total = small * batch_size / estimate_batch + 4 * params
        scale = f"B={estimate_batch} x {batch_size // estimate_batch}"
        out.update(peak_memory_gb=round(total / 2**30, 2), measured=False,
                   memory_method=f"estimate: float32 saved tensors at {scale} + params/grads/AdamW "
                                 "(no GPU here; bf16 autocast needs less)")
    out["fits_budget"] = bool(out["peak_memory_gb"] <= GPU_BUDGET_GB)
    return out


QUALITY_MODELS = ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", "tiger-cpu", "cobra-cpu")


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


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Mean validation NDCG@10 per epoch over the runs that reached that epoch (early stopping differs)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            by_epoch.setdefault(point["epoch"], []).append(point["valid_ndcg@10"])
    return [{"epoch": e, "valid_ndcg@10_mean": float(np.mean(v)), "runs": len(v)} for e, v in sorted(by_epoch.items())]


def decode_ablation(run_dirs: Sequence[str | Path]) -> dict[str, dict[str, float]]:
    """Validation and test NDCG@10 of COBRA runs' best checkpoints under every decoding mode.

    Returns:
        {mode: {valid_ndcg@10_mean, ndcg@10_mean, ndcg@10_std, hr@10_mean, hr@10_std}} over the runs, for every
        key of :data:`cobra.decode.DECODERS` (COBRA's four modes and the ``sparse`` ablation).
    """
    from cobra.decode import DECODERS
    from cobra.train import evaluate, load_run

    scores: dict[str, dict[str, list[float]]] = {m: {"valid": [], "test": [], "hr": []} for m in DECODERS}
    for run_dir in run_dirs:
        model, config, split = load_run(run_dir)
        for mode in DECODERS:
            for which in ("valid", "test"):
                r = evaluate(model, split, which, batch_size=config.train.eval_batch_size,
                             score_options={"decode": mode})
                scores[mode][which].append(r["ndcg@10"])
                if which == "test":
                    scores[mode]["hr"].append(r["hr@10"])
    return {m: {"valid_ndcg@10_mean": float(np.mean(v["valid"])), **mean_std("ndcg@10", v["test"]),
                **mean_std("hr@10", v["hr"])} for m, v in scores.items()}


def bench_quality(models: Sequence[str] = QUALITY_MODELS, seeds: int = 3,
                  out_dir: str | Path | None = None, resume: bool = False, progress: bool = False,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and standard deviation over ``seeds`` runs of HR@10 / NDCG@10 for each preset, plus ``popular``.

    Args:
        models: preset names of any kind (all on the same dataset, e.g. the ``cpu`` ones on MovieLens-100K).
        seeds: runs per preset, with ``seed = 0 .. seeds - 1``.
        out_dir: where the runs go (default ``data_home()/runs/bench-quality``), one folder per (preset, seed),
            ``<preset>-seed<s>``, or ``<preset>-<hash of overrides>-seed<s>`` with ``overrides``.
        resume: reuse finished runs found there instead of training again.
        progress: tqdm bars.
        overrides: extra ``--set`` values for every run (e.g. ``{"epochs": 5}`` for a quick look).

    Returns:
        dict with dataset, seeds, models ({preset: {model, hr@10_mean, hr@10_std, ndcg@10_mean, ndcg@10_std,
        runs: [{seed, hr@10, ndcg@10, epochs, best_epoch, seconds, curve}], curve, seconds}}) and popular
        ({hr@10, ndcg@10}). Models that decode (COBRA) also get ``decodes``: per mode of
        :data:`cobra.decode.DECODERS`, the mean validation and test NDCG@10 (and test std) of the same
        best checkpoints, and ``best_decode_on_valid``, the mode with the highest validation mean.
        ``curve`` of a run is :func:`validation_curve`; the model's ``curve`` is the mean
        validation NDCG@10 per epoch over the seeds that reached it (``runs`` of them).
        The standard deviation is the sample one (``ddof = 1``; 0 for a single seed).
    """
    from cobra.metrics import evaluate_baseline

    if seeds < 1:
        raise ConfigError(f"bench quality needs seeds >= 1, got {seeds}")
    if not models:
        raise ConfigError("bench quality needs at least one preset")
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-quality"
    configs = {name: [get_preset(name, {**(overrides or {}), "seed": seed}) for seed in range(seeds)]
               for name in models}
    datasets = {c.dataset for runs in configs.values() for c in runs}
    if len(datasets) > 1:  # checked before hours of training
        raise ConfigError(f"bench quality compares presets on one dataset; got {sorted(datasets)}")
    tag = "-" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8] if overrides else ""
    results: dict[str, Any] = {}
    for name, seed_configs in configs.items():
        runs = []
        for seed, config in enumerate(seed_configs):
            run_dir = root / f"{name}{tag}-seed{seed}"
            r = fit(config, run_dir, resume=resume, progress=progress)
            runs.append({"seed": seed, "hr@10": r["hr@10"], "ndcg@10": r["ndcg@10"], "epochs": r["epochs"],
                         "best_epoch": r["best_epoch"], "seconds": r["seconds"],
                         "curve": validation_curve(run_dir)})
        entry: dict[str, Any] = {"model": r["model"]}
        for key in ("hr@10", "ndcg@10"):
            entry.update(mean_std(key, [run[key] for run in runs]))
        entry.update(runs=runs, curve=_mean_curve([run["curve"] for run in runs]),
                     seconds=round(sum(run["seconds"] for run in runs), 1))
        if MODELS[seed_configs[0].kind].decodes:
            entry["decodes"] = decode_ablation([root / f"{name}{tag}-seed{seed}" for seed in range(seeds)])
            entry["best_decode_on_valid"] = max(entry["decodes"],
                                                key=lambda m: entry["decodes"][m]["valid_ndcg@10_mean"])
        results[name] = entry
    dataset = datasets.pop() if datasets else "ml-100k"
    popular = evaluate_baseline("popular", dataset)
    return {"dataset": dataset, "seeds": seeds, "overrides": dict(overrides or {}), "models": results,
            "popular": {"hr@10": popular["hr@10"], "ndcg@10": popular["ndcg@10"]}}


def cli_bench_speed(progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench speed [--json]``."""
    return bench_speed(verbose=progress)


def cli_bench_quality(models: str | Sequence[str] | None = None, seeds: int | None = None, sets: Sequence[str] = (),
                      resume: bool = False, out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench quality [--models a,b,c] [--seeds 3] [--set K=V ...] [--resume] [--out FILE] [--json]``.

    ``models`` is the ``--models`` string (or a list; None: :data:`QUALITY_MODELS`), ``sets`` the ``--set``
    strings. Everything is checked before any training. With ``--out`` the result is also written to ``FILE``
    as indented JSON (parents created).
    """
    if models is None:
        models = list(QUALITY_MODELS)
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models names no preset; pass comma-separated presets, e.g. --models hstu-cpu,sasrec-cpu "
                          f"(python -m cobra presets lists them), or leave it out for {','.join(QUALITY_MODELS)}")
    seeds = 3 if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds is the number of runs per model and must be >= 1, got {seeds}")
    check_out_file(out)
    overrides = parse_overrides(list(sets or []))
    for name in models:
        get_preset(name, overrides)  # an unknown preset or key fails now, before any training
    try:
        result = bench_quality(models, seeds, resume=resume, progress=progress, overrides=overrides)
    except KeyboardInterrupt:
        how = "the same command to resume" if resume else "the same command with --resume to reuse the finished runs"
        raise Interrupted(f"interrupted; run {how}") from None
    return write_result(result, out)
