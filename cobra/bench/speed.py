"""Training speed and memory: ``python -m cobra bench speed [--json]``.

Explained in chapter 05 (book/05_hstu.py); the README's GPU table is this benchmark on one H100
(``book/results/bench_speed_h100.json``).

* :func:`bench_speed` -- training throughput (tokens/s) and peak memory of HSTU and SASRec at
  ``T = 50, 100, 200, 400`` with ``D = 64``, side by side in one process, a few steps each, so the
  cost curve in ``T`` is visible. On CUDA it also trains the ``4090d`` presets of HSTU, COBRA and
  TIGER at their batch sizes (bf16 autocast) and reports ``torch.cuda.max_memory_allocated`` against
  the 24 GB budget, and the HSTU preset's tokens/s eager and under ``torch.compile``; on CPU it
  *estimates* the memory (see :func:`memory_estimate`) and says so.
* :func:`preset_memory` -- peak training memory of one preset (any kind) at its batch size, on inputs
  of the preset's shapes (:func:`synthetic_batch`, :func:`synthetic_inputs`), so no dataset is needed.
* :func:`run` -- the command.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the measured steps. CPU has no such
counter, so there we report an estimate: the bytes of the tensors autograd saves for the backward
pass (distinct storages, counted with ``torch.autograd.graph.saved_tensors_hooks``) plus parameters,
gradients and the two AdamW moments. The result says which method it used (``memory_method``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cobra.data import Batch
from cobra.model_kinds import SequentialModel
from cobra.models import ModelConfig
from cobra.presets import RunConfig, get_preset
from cobra.runs import build_model
from cobra.sid import add_uniqueness
from cobra.train import TrainModule, autocast, make_optimizer, train_step

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
            config = ModelConfig(num_items=num_items, backbone=backbone, loss=loss, dim=dim, num_blocks=2, num_heads=1,
                                 max_seq_len=T, dropout=0.2)
            trainer = TrainModule(SequentialModel(config)).to(dev)
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
    batch_size = batch_size or config.train.batch_size
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    T = config.model.max_seq_len
    torch.manual_seed(0)
    trainer = TrainModule(build_model(config, *synthetic_inputs(config, num_items), num_items=num_items)).to(dev)
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


def run(*, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench speed [--json]`` (``profile`` is not used: the inputs are synthetic)."""
    return bench_speed(verbose=progress)
