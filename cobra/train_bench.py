"""Training benchmarks: ``python -m cobra bench speed`` and ``python -m cobra bench quality``.

Explained in chapter 06 (book/06_hstu.py); the quality table of all models belongs to the
experiments chapter (chapter 10, not yet written).

* :func:`bench_speed` -- training throughput (tokens/s) and peak memory of HSTU and SASRec at
  ``T = 50, 100, 200, 400`` with ``D = 64``, side by side in one process, a few steps each, so the
  cost curve in ``T`` is visible. On CUDA it also trains the ``4090d`` HSTU preset at batch 128 and
  reports ``torch.cuda.max_memory_allocated`` against the 24 GB budget; on CPU it *estimates* that
  figure (see :func:`memory_estimate`) and says so.
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

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cobra.config import data_home
from cobra.data import Batch
from cobra.model_kinds import SequentialModel
from cobra.models import ModelConfig
from cobra.presets import get_preset
from cobra.train import TrainModule, autocast, fit, make_optimizer, train_step

SPEED_LENGTHS = (50, 100, 200, 400)
GPU_BUDGET_GB = 24.0


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


def _measure(trainer: TrainModule, batch: Batch, steps: int, device: torch.device, amp: str) -> dict[str, Any]:
    """Train ``steps`` steps on one batch (after one warm-up step): tokens/s and peak memory."""
    optimizer = make_optimizer(trainer, 1e-3, (0.9, 0.98), 0.0)
    batch = batch.to(device)
    train_step(trainer, batch, optimizer, trainer, amp=amp, grad_clip=1.0, device=device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(trainer, batch, optimizer, trainer, amp=amp, grad_clip=1.0, device=device)
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
    gpu_preset: str = "hstu-4090d",
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
        gpu_preset: preset measured at batch 128 on CUDA (estimated on CPU).
        verbose: print one line per configuration.

    Returns:
        dict with device, dim, batch_size, steps, rows (one per (model, T): model, T, tokens_per_second,
        seconds_per_step, peak_memory_mb, memory_method), ratios (HSTU / SASRec tokens/s per T) and
        ``preset`` (the ``gpu_preset`` measurement or estimate).
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
    return {"device": str(dev), "dim": dim, "batch_size": batch_size, "steps": steps, "loss": loss,
            "amp": amp, "rows": rows, "hstu_over_sasrec_tokens_per_second": ratios,
            "preset": preset_memory(gpu_preset, device=str(dev), steps=steps)}


def preset_memory(name: str = "hstu-4090d", batch_size: int = 128, num_items: int = 26_744,
                  device: str | None = None, steps: int = 5, estimate_batch: int = 4) -> dict[str, Any]:
    """Peak training memory of preset ``name`` at ``batch_size`` (ML-20M has 26,744 items).

    On CUDA: measured (``max_memory_allocated``, with the preset's autocast) together with tokens/s.
    On CPU: estimated without the GPU -- saved-for-backward bytes of a float32 step at
    ``estimate_batch`` rows, scaled linearly to ``batch_size``, plus parameters, gradients and the
    AdamW moments. bf16 autocast stores many of those activations in half the bytes, so the
    float32 figure is an upper estimate.
    """
    config = get_preset(name)
    model_config = config.model.replace(num_items=num_items)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    T = model_config.max_seq_len
    torch.manual_seed(0)
    model = SequentialModel(model_config, loss=config.train.loss, num_negatives=config.train.num_negatives,
                            temperature=config.train.temperature)
    trainer = TrainModule(model).to(dev)
    out: dict[str, Any] = {"preset": name, "batch_size": batch_size, "T": T, "num_items": num_items,
                           "budget_gb": GPU_BUDGET_GB}
    if dev.type == "cuda":
        row = _measure(trainer, synthetic_batch(batch_size, T, num_items), steps, dev, config.train.amp)
        out.update(row, peak_memory_gb=round(row["peak_memory_mb"] / 1024, 2), measured=True)
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
    """Per-epoch ``{"epoch", "valid_ndcg@10", "seconds"}`` of a run, from its ``metrics.jsonl``.

    ``seconds`` is the wall time of the run up to the end of that epoch (training and validation).
    Epochs without a validation (``eval_every > 1``) are skipped.
    """
    path = Path(run_dir) / "metrics.jsonl"
    curve, elapsed = [], 0.0
    for line in path.read_text().splitlines() if path.is_file() else []:
        record = json.loads(line)
        elapsed += float(record.get("seconds", 0.0))
        if "valid_ndcg@10" in record:
            curve.append({"epoch": int(record["epoch"]), "valid_ndcg@10": float(record["valid_ndcg@10"]),
                          "seconds": round(elapsed, 3)})
    return curve


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Mean validation NDCG@10 per epoch over the runs that reached that epoch (early stopping differs)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            by_epoch.setdefault(point["epoch"], []).append(point["valid_ndcg@10"])
    return [{"epoch": e, "valid_ndcg@10_mean": float(np.mean(v)), "runs": len(v)} for e, v in sorted(by_epoch.items())]


def bench_quality(models: Sequence[str] = QUALITY_MODELS, seeds: int = 3,
                  out_dir: str | Path | None = None, resume: bool = False, progress: bool = False,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and standard deviation over ``seeds`` runs of HR@10 / NDCG@10 for each preset, plus ``popular``.

    Args:
        models: preset names of any kind (all on the same dataset, e.g. the ``cpu`` ones on MovieLens-100K).
        seeds: runs per preset, with ``seed = 0 .. seeds - 1``.
        out_dir: where the runs go (default ``data_home()/runs/bench-quality``), one folder per (preset, seed).
        resume: reuse finished runs found there instead of training again.
        progress: tqdm bars.
        overrides: extra ``--set`` values for every run (e.g. ``{"epochs": 5}`` for a quick look).

    Returns:
        dict with dataset, seeds, models ({preset: {model, hr@10_mean, hr@10_std, ndcg@10_mean, ndcg@10_std,
        runs: [{seed, hr@10, ndcg@10, epochs, best_epoch, seconds, curve}], curve, seconds}}) and popular
        ({hr@10, ndcg@10}). ``curve`` of a run is :func:`validation_curve`; the model's ``curve`` is the mean
        validation NDCG@10 per epoch over the seeds that reached it (``runs`` of them).
        The standard deviation is the sample one (``ddof = 1``; 0 for a single seed).
    """
    from cobra.metrics import evaluate_baseline

    if seeds < 1:
        raise ValueError(f"bench quality needs seeds >= 1, got {seeds}")
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-quality"
    configs = {name: [get_preset(name, {**(overrides or {}), "seed": seed}) for seed in range(seeds)]
               for name in models}
    datasets = {c.dataset for runs in configs.values() for c in runs}
    if len(datasets) > 1:  # checked before hours of training
        raise ValueError(f"bench quality compares presets on one dataset; got {sorted(datasets)}")
    results: dict[str, Any] = {}
    for name, seed_configs in configs.items():
        runs = []
        for seed, config in enumerate(seed_configs):
            run_dir = root / f"{name}-seed{seed}"
            r = fit(config, run_dir, resume=resume, progress=progress)
            runs.append({"seed": seed, "hr@10": r["hr@10"], "ndcg@10": r["ndcg@10"], "epochs": r["epochs"],
                         "best_epoch": r["best_epoch"], "seconds": r["seconds"],
                         "curve": validation_curve(run_dir)})
        entry: dict[str, Any] = {"model": r["model"]}
        for key in ("hr@10", "ndcg@10"):
            values = [run[key] for run in runs]
            entry[f"{key}_mean"] = float(np.mean(values))
            entry[f"{key}_std"] = float(statistics.stdev(values)) if len(values) > 1 else 0.0
        entry.update(runs=runs, curve=_mean_curve([run["curve"] for run in runs]),
                     seconds=round(sum(run["seconds"] for run in runs), 1))
        results[name] = entry
    dataset = datasets.pop() if datasets else "ml-100k"
    popular = evaluate_baseline("popular", dataset)
    return {"dataset": dataset, "seeds": seeds, "models": results,
            "popular": {"hr@10": popular["hr@10"], "ndcg@10": popular["ndcg@10"]}}


def cli_bench_speed(args: Any) -> dict[str, Any]:
    """``python -m cobra bench speed [--json]``."""
    return bench_speed(verbose=not getattr(args, "json", False))


def cli_bench_quality(args: Any) -> dict[str, Any]:
    """``python -m cobra bench quality [--models a,b,c] [--seeds 3] [--out FILE] [--json]``.

    With ``--out`` the result is also written to ``FILE`` as indented JSON (parents created).
    """
    models = getattr(args, "models", None) or ",".join(QUALITY_MODELS)
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    for name in models:
        get_preset(name)  # an unknown name fails now, with the list of presets
    result = bench_quality(models, int(getattr(args, "seeds", None) or 3), progress=not getattr(args, "json", False))
    out = getattr(args, "out", None)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        result = {**result, "out": str(path)}
    return result
