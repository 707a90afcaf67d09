"""The training loop: ``train_step``, ``evaluate`` and ``fit``, with exact resume and DDP.

Explained in chapter 05 (book/05_hstu.py).

:func:`fit` trains a :class:`cobra.presets.RunConfig` into a run directory (its files, checkpoints and
ownership marker: :mod:`cobra.runs`) in four steps: :func:`_prepare` (threads, device, data, semantic IDs and
text vectors from :mod:`cobra.inputs`, model, optimiser), :func:`_restore` (resume from ``last.pt`` or start
over, then write ``config.json``), :func:`_run_epochs` (train, validate, checkpoint every epoch) and
:func:`_test` (the test metrics of ``best.pt``).

The loop knows no model by name: every kind of :data:`cobra.model_kinds.MODELS` (``sequential`` HSTU /
SASRec, ``cobra``, ``tiger``) is built by its registry entry (:func:`cobra.runs.build_model`) and trained
through one protocol, ``model.training_loss(batch, generator) -> (loss, stats)``; it is evaluated through
``model.score(batch)``.

Design choices that make a resumed run *exactly* equal to an uninterrupted one on CPU:

* the order of the training windows in epoch ``e`` is a permutation drawn from a generator seeded
  with ``(seed, e)`` only (:func:`epoch_order`), never from a stream that carries over epochs;
* at the start of every epoch the global RNGs (dropout, negatives) are reseeded from
  ``(seed, e, rank)`` (:func:`epoch_seed`); the checkpoint also stores the python / numpy / torch
  RNG states, as tensors and lists so ``torch.load(weights_only=True)`` reads them;
* the checkpoint is written once per epoch, after the evaluation, with ``os.replace`` over a temp
  file in the same directory, so a crash while writing leaves the previous checkpoint intact.

Multi-GPU: launched with ``torchrun --nproc_per_node=K -m cobra train ...``, every process reads
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, joins the process group (NCCL on CUDA, gloo on CPU),
trains on its shard of each epoch's permutation (like ``DistributedSampler``: padded to a multiple
of the world size, rank ``r`` takes every ``world``-th window) and DDP averages the gradients.
Only rank 0 evaluates and writes files; the early-stop decision is broadcast to every rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cobra.config import ConfigError, atomic_write
from cobra.data import Batch, LeaveOneOut, TrainWindows, load_split
from cobra.inputs import item_text_vectors, semantic_ids, sid_config_of, text_fingerprint
from cobra.model_kinds import MODELS, Trainable
from cobra.presets import RunConfig, get_preset, load_run_config, save_run_config
from cobra.runs import (
    CHECKPOINT_VERSION,
    MetricsLog,
    TrainState,
    build_model,
    check_resumable,
    claim_run_dir,
    default_run_dir,
    load_checkpoint,
    load_run,
    load_run_codes,
    load_weights,
    run_dir_problem,
    save_checkpoint,
    save_run_codes,
    with_num_items,
)

RESULT_KEYS = ("model", "preset", "epochs", "seconds", "tokens_per_second",
               "hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200", "mrr")
METRIC_KEYS = RESULT_KEYS[5:]
SELECT_METRIC = "ndcg@10"  # validation metric for early stopping and best.pt
log = logging.getLogger(__name__)

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------- devices
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available (this process's ``LOCAL_RANK`` GPU), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use --set device=cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def autocast(device: torch.device, amp: str = "none") -> contextlib.AbstractContextManager:
    """bf16 / fp16 autocast on CUDA; a no-op on CPU or with ``amp="none"``."""
    dtype = AMP_DTYPES[amp]
    if device.type != "cuda" or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


# ------------------------------------------------------------------------------------------------ seeds
def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, rank)``."""
    ss = np.random.SeedSequence([seed, epoch, rank])
    return int(ss.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally switch on deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global state other code may draw from
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch as tensors / lists (readable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------ distributed
@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a ``torchrun`` job (``world_size == 1`` without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when ``WORLD_SIZE > 1`` (set by ``torchrun``); NCCL on CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _broadcast(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _all_sum(info: DistInfo, *values: float) -> list[float]:
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


# ------------------------------------------------------------------------------------------------- data
def epoch_order(num_windows: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                shuffle: bool = True) -> np.ndarray:
    """Window indices this rank trains on in ``epoch``: depends only on ``(seed, epoch, rank, world_size)``.

    Returns:
        (ceil(W / world_size),) int64; the permutation is padded (wrapping around) to a multiple of
        ``world_size`` so every rank runs the same number of steps, then rank ``r`` takes every
        ``world_size``-th index starting at ``r`` (as ``torch.utils.data.DistributedSampler``).
    """
    order = np.arange(num_windows, dtype=np.int64)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(num_windows)
    total = math.ceil(num_windows / world_size) * world_size
    order = np.resize(order, total)  # wraps around
    return order[rank::world_size]


def epoch_batches(windows: TrainWindows, batch_size: int, order: np.ndarray) -> Iterator[Batch]:
    """Training batches of ``windows`` in ``order`` (vectorised gathers, no worker processes)."""
    for lo in range(0, len(order), batch_size):
        yield windows.__getitems__(order[lo:lo + batch_size].tolist())


# ------------------------------------------------------------------------------------------------ model
class TrainModule(nn.Module):
    """A model's training loss as one module: ``forward(batch) -> () loss``, so DDP and compile see it all.

    Args:
        model: any :class:`cobra.model_kinds.Trainable` (``training_loss(batch, generator) -> (loss, stats)``).

    Attributes:
        stats: the ``stats`` dict of the last forward call (floats, e.g. ``loss_sid`` / ``loss_vid``).
    """

    def __init__(self, model: Trainable) -> None:
        super().__init__()
        self.model = model
        self.stats: dict[str, float] = {}

    def forward(self, batch: Batch) -> torch.Tensor:
        """batch with ids/timestamps/next_ids (B, T) -> () float32 loss (negatives from the global RNG)."""
        loss, self.stats = self.model.training_loss(batch, None)
        return loss


def make_optimizer(model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float
                   ) -> torch.optim.Optimizer:
    """AdamW over every trainable parameter."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas,
                             weight_decay=weight_decay)


class LinearWarmup:
    """``lr * min(1, (step + 1) / warmup_steps)``: a picklable-free multiplier for ``LambdaLR``."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        return 1.0 if self.warmup_steps <= 0 else min(1.0, (step + 1) / self.warmup_steps)


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_steps`` steps, then constant."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearWarmup(warmup_steps))


# ------------------------------------------------------------------------------------------------- step
def train_step(
    model: nn.Module,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Batch], torch.Tensor],
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: str = "none",
    grad_clip: float = 0.0,
    device: torch.device | str | None = None,
) -> float:
    """One optimisation step; returns the loss as a float.

    Args:
        model: the module whose parameters are clipped (the one ``optimizer`` updates).
        batch: training batch, ids/timestamps/next_ids (B, T) int64, lengths (B,); moved to ``device``.
        optimizer: e.g. from :func:`make_optimizer`.
        loss_fn: ``batch -> () float`` loss, e.g. a (DDP-wrapped) :class:`TrainModule`.
        scheduler: stepped after the optimiser (per step).
        scaler: a ``GradScaler`` for fp16; None otherwise.
        amp: ``none`` / ``bf16`` / ``fp16`` autocast (CUDA only; no-op on CPU).
        grad_clip: clip the global gradient norm to this (0 = off).
        device: where the batch goes (default: the model's device).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    batch = batch.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp):
        loss = loss_fn(batch)  # ()
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


# --------------------------------------------------------------------------------------------- evaluate
class _Autocast:
    """Recommender adapter: ``model.score(batch, **options)`` under the run's autocast, as float32."""

    def __init__(self, model: Trainable, device: torch.device, amp: str,
                 options: dict[str, Any] | None = None) -> None:
        self.model, self.device, self.amp, self.options = model, device, amp, options or {}

    @torch.no_grad()
    def score(self, batch: Batch) -> torch.Tensor:
        with autocast(self.device, self.amp):
            return self.model.score(batch, **self.options).float()  # (B, N+1)


def evaluate(model: Trainable, split: LeaveOneOut, which: str = "valid", *,
             max_seq_len: int | None = None, batch_size: int = 512, amp: str = "none",
             device: torch.device | str | None = None, score_options: dict[str, Any] | None = None,
             per_user: tuple[str, ...] = ()) -> dict[str, Any]:
    """Full-catalogue HR@K / NDCG@K / MRR of ``model`` on ``split`` ("valid" or "test").

    Runs in eval mode (dropout off) without gradients and restores the previous mode.
    ``score_options`` are passed to ``model.score`` (e.g. ``{"decode": "direct"}`` for COBRA).

    Returns:
        dict of :class:`cobra.metrics.Evaluator` (``hr@10``, ``ndcg@10``, ..., ``mrr`` floats, ``users``), and
        ``per_user`` (``{name: (M,) array}``) when ``per_user`` names metrics.
    """
    from cobra.metrics import Evaluator

    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        evaluator = Evaluator(split, which, max_seq_len or model.config.max_seq_len, batch_size, progress=False)
        recommender = _Autocast(model, device, amp, score_options)
        result = evaluator.evaluate(recommender, device=device, per_user=per_user)
        return {k: v if k == "per_user" else float(v) for k, v in result.items()}
    finally:
        model.train(was_training)


# -------------------------------------------------------------------------------------------------- fit
def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def _diverged(config: RunConfig, epoch: int, what: str, out_dir: Path) -> ConfigError:
    lr = suggested = config.train.lr
    with contextlib.suppress(Exception):
        suggested = get_preset(config.preset).train.lr
    if suggested >= lr:
        suggested = lr / 10
    return ConfigError(
        f"training diverged in epoch {epoch}: {what} (train.lr={lr:g}); the learning rate is probably too high. "
        f"Train again with a lower one, e.g. --set train.lr={suggested:g}, into a new --out (or delete {out_dir}"
        + ("; its last checkpoint is from before the divergence)" if (out_dir / "last.pt").is_file() else ")")
    )


def _result(config: RunConfig, state: TrainState, metrics: dict[str, float], out_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": MODELS[config.kind].label(config.model),
        "preset": config.preset,
        "epochs": state.epoch,
        "seconds": round(state.seconds, 3),
        "tokens_per_second": round(state.tokens / max(state.train_seconds, 1e-9), 1),
    }
    result.update({k: metrics[k] for k in METRIC_KEYS})
    result.update({"best_epoch": state.best_epoch, "valid_ndcg@10": state.best_metric, "run": str(out_dir)})
    return result


@dataclass
class _Run:
    """What :func:`_prepare` sets up for one call of :func:`fit`.

    Attributes:
        config: the run, with ``model.num_items`` of the data (and the text vectors' fingerprint, if it reads them).
        out_dir: the run directory (the same on every rank).
        device: where the model trains.
        info: this process's place in a ``torchrun`` job.
        split: the data.
        codes: (N, L + 1) int64 semantic IDs, or None for models without them.
        model: the network on ``device``, freshly initialised (the weights of ``last.pt`` come in :func:`_restore`).
        optimizer, scheduler, scaler: AdamW, linear warm-up, and a ``GradScaler`` for fp16 on CUDA (else None).
        start: ``time.perf_counter()`` when the setup began (its seconds count towards the run's).
    """

    config: RunConfig
    out_dir: Path
    device: torch.device
    info: DistInfo
    split: LeaveOneOut
    codes: np.ndarray | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    start: float


def fit(
    config: RunConfig,
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    *,
    stop_after: int | None = None,
    callback: Callable[[dict[str, Any], nn.Module], None] | None = None,
    split: LeaveOneOut | None = None,
    codes: np.ndarray | None = None,
    text_vectors: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``out_dir`` and return the test metrics of the best checkpoint.

    Args:
        config: the run (a preset from :func:`cobra.presets.get_preset`).
        out_dir: run directory (default :func:`cobra.runs.default_run_dir`); created if needed.
        resume: continue from ``out_dir/last.pt`` when it exists (else start over, clearing the files an
            earlier run wrote there, with a note on stderr). A non-empty ``out_dir`` that is not a run
            directory (:func:`cobra.runs.run_dir_problem`) is refused; every run directory gets a
            :data:`cobra.runs.RUN_MARKER`.
        progress: tqdm bar with loss and tokens/s (rank 0 only).
        stop_after: return after this many epochs *in this call* (the run stays resumable), as if
            the process had been killed; the result then has ``"stopped": True`` and no test metrics.
        callback: ``callback(record, model)``, called on every rank after each epoch's checkpoint with
            the epoch's metrics record (``rank`` added; validation metrics on rank 0 only) and the
            unwrapped model; raising in it interrupts the run like a crash would.
        split: the data split to use (default: ``config.dataset`` loaded and split leave-one-out).
        codes: (N, L + 1) int64 semantic IDs (default: :func:`cobra.inputs.semantic_ids` when the model
            needs them).
        text_vectors: (N, Dt) float32 item text vectors (default: :func:`cobra.inputs.item_text_vectors`
            when the model needs them); their fingerprint is stored in ``config.json``.

    Returns:
        dict with keys model, preset, epochs, seconds, tokens_per_second, hr@10, ndcg@10, hr@50,
        ndcg@50, hr@200, ndcg@200, mrr, best_epoch, valid_ndcg@10, run (also written to result.json).
    """
    run = _prepare(config, out_dir, resume, progress, split, codes, text_vectors)
    state = _restore(run, resume)
    stopped = _run_epochs(run, state, progress, stop_after, callback)
    return stopped if stopped is not None else _test(run, state)


def _prepare(config: RunConfig, out_dir: str | Path | None, resume: bool, progress: bool,
             split: LeaveOneOut | None, codes: np.ndarray | None, text_vectors: np.ndarray | None) -> _Run:
    """Threads, device, process group, the run directory's check, data, codes, text vectors, model, optimiser.

    Seeds the global RNGs with ``train.seed`` right before the model is built (its initial weights).
    """
    tc = config.train
    if tc.num_threads > 0:
        torch.set_num_threads(tc.num_threads)
    device = resolve_device(tc.device)
    info = init_distributed(device)
    out_dir = Path(out_dir) if out_dir is not None else default_run_dir(config.preset)
    out_dir = Path(_broadcast(info, str(out_dir)))
    problem = _broadcast(info, run_dir_problem(out_dir) if info.is_main else None)
    if problem:
        raise ConfigError(problem)
    start = time.perf_counter()

    split = split if split is not None else load_split(config.dataset)
    config = with_num_items(config, split.num_items)
    if not split.timed and getattr(config.model, "use_time_bias", False):
        log.warning("%s has no timestamps: %s runs without its time bias (model.use_time_bias=false)",
                    config.dataset, config.preset)
        config = config.replace(model=config.model.replace(use_time_bias=False))
    if config.uses_sids and codes is None:
        codes_path = out_dir / "sid_codes.npz"
        if resume and codes_path.is_file():
            codes = load_run_codes(codes_path, config)
        else:
            sid_config = sid_config_of(config)
            if info.is_main:
                codes = semantic_ids(config.dataset, config.encoder, sid_config, progress=progress)
            _barrier(info)
            # other ranks: from the cache
            codes = codes if codes is not None else semantic_ids(config.dataset, config.encoder, sid_config)
    if config.uses_text:
        if text_vectors is None:
            if info.is_main:
                text_vectors = item_text_vectors(config.dataset, config.encoder, progress=progress)
            _barrier(info)
            if text_vectors is None:  # other ranks: from the cache
                text_vectors = item_text_vectors(config.dataset, config.encoder)
        config = config.replace(text_vectors=text_fingerprint(text_vectors))

    seed_everything(tc.seed, tc.deterministic)
    model = build_model(config, codes, text_vectors).to(device)
    optimizer = make_optimizer(model, tc.lr, tc.betas, tc.weight_decay)
    scheduler = make_scheduler(optimizer, tc.warmup_steps)
    use_scaler = tc.amp == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    return _Run(config, out_dir, device, info, split, codes, model, optimizer, scheduler, scaler, start)


def _restore(run: _Run, resume: bool) -> TrainState:
    """Resume from ``last.pt`` (weights, optimiser, scheduler, scaler, counters, RNG states) or start over.

    Starting over removes what an earlier run wrote into the directory (with a note on stderr). Either way
    rank 0 then claims the directory and writes ``config.json`` (and ``sid_codes.npz``).
    """
    config, out_dir, info, tc = run.config, run.out_dir, run.info, run.config.train
    state = TrainState()
    last = out_dir / "last.pt"
    if resume and last.is_file():
        check_resumable(load_run_config(out_dir), config, out_dir)
        ckpt = load_checkpoint(last)  # on CPU: RNG states must stay there; load_state_dict moves the rest
        load_weights(run.model, ckpt, last, out_dir)
        try:
            run.optimizer.load_state_dict(ckpt["optimizer"])
            run.scheduler.load_state_dict(ckpt["scheduler"])
            if run.scaler is not None and ckpt.get("scaler"):
                run.scaler.load_state_dict(ckpt["scaler"])
            state = TrainState(**ckpt["state"])
            set_rng_state(ckpt["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ConfigError(f"{last} holds no resumable training state ({type(err).__name__}: {err}); restore it "
                              f"from a copy, or delete it to start the run in {out_dir} over") from None
        # epochs and patience may have changed since: a finished run continues if they now allow it
        state.finished = state.epoch >= tc.epochs or 0 < tc.patience <= state.bad_evals
    elif info.is_main:
        # Starting over: remove what an earlier run wrote here (the directory is ours: run_dir_problem), and say so.
        old = [name for name in ("last.pt", "best.pt", "result.json", "metrics.jsonl") if (out_dir / name).exists()]
        if old:
            why = "resume=False" if last.is_file() else "no last.pt to resume from"
            print(f"note: starting the run in {out_dir} over ({why}); removing its old {', '.join(old)}",
                  file=sys.stderr)
        for stale in old:
            (out_dir / stale).unlink(missing_ok=True)
    if info.is_main:
        claim_run_dir(out_dir)
        save_run_config(config, out_dir / "config.json")
        if run.codes is not None:
            save_run_codes(out_dir / "sid_codes.npz", run.codes)
    _barrier(info)
    return state


def _run_epochs(run: _Run, state: TrainState, progress: bool, stop_after: int | None,
                callback: Callable[[dict[str, Any], nn.Module], None] | None) -> dict[str, Any] | None:
    """Train, validate (rank 0) and checkpoint epoch by epoch until the run is finished.

    Returns:
        None when the run is finished, or ``{"stopped": True, "epochs", "run"}`` after ``stop_after`` epochs.
    """
    config, model, out_dir, info, device = run.config, run.model, run.out_dir, run.info, run.device
    tc = config.train
    last = out_dir / "last.pt"
    log = MetricsLog(out_dir, state.epoch) if info.is_main else None

    module = TrainModule(model)
    trainer: nn.Module = module
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        trainer = DistributedDataParallel(trainer, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        trainer = torch.compile(trainer)

    windows = TrainWindows(run.split, config.model.max_seq_len, config.train.windows)
    epochs_this_call = 0
    state.seconds += time.perf_counter() - run.start
    try:
        while state.epoch < tc.epochs and not state.finished:
            if stop_after is not None and epochs_this_call >= stop_after:
                return {"stopped": True, "epochs": state.epoch, "run": str(out_dir)}
            t_epoch = time.perf_counter()
            record = _train_epoch(trainer, module, run.optimizer, run.scheduler, run.scaler, windows, config, state,
                                  info, device, progress)
            if not math.isfinite(record["loss"]):  # the same on every rank (summed over ranks)
                raise _diverged(config, state.epoch + 1, f"the mean training loss is {record['loss']}", out_dir)
            state.epoch += 1
            epochs_this_call += 1
            stop = False
            if info.is_main:
                if state.epoch % tc.eval_every == 0 or state.epoch == tc.epochs:
                    try:
                        valid = evaluate(model, run.split, "valid", batch_size=tc.eval_batch_size, amp=tc.amp,
                                         device=device)
                    except ValueError as err:  # cobra.metrics refuses NaN scores
                        if "NaN" not in str(err):
                            raise
                        raise _diverged(config, state.epoch, "the model's scores contain NaN", out_dir) from None
                    record.update({f"valid_{k}": v for k, v in valid.items() if k != "users"})
                    if valid[SELECT_METRIC] > state.best_metric:
                        state.best_metric, state.best_epoch, state.bad_evals = valid[SELECT_METRIC], state.epoch, 0
                        save_checkpoint(out_dir / "best.pt", {"model": model.state_dict(), "epoch": state.epoch,
                                                              "valid": valid})
                    else:
                        state.bad_evals += 1
                    stop = tc.patience > 0 and state.bad_evals >= tc.patience
            stop = bool(_broadcast(info, stop))
            state.finished = stop or state.epoch >= tc.epochs
            state.seconds += time.perf_counter() - t_epoch
            record["seconds"] = round(time.perf_counter() - t_epoch, 3)
            if info.is_main:
                log.write(record)
                save_checkpoint(last, {
                    "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                    "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                    "scaler": run.scaler.state_dict() if run.scaler else None,
                    "rng": rng_state(), "state": dataclasses.asdict(state),
                })
            _barrier(info)
            if callback is not None:
                callback({**record, "rank": info.rank}, model)
    finally:
        if log is not None:
            log.close()
    return None


def _test(run: _Run, state: TrainState) -> dict[str, Any]:
    """Rank 0: the test metrics of ``best.pt``, written to ``result.json``; every rank returns them."""
    result: dict[str, Any] = {}
    if run.info.is_main:
        tc = run.config.train
        t_test = time.perf_counter()
        best = load_checkpoint(run.out_dir / "best.pt", map_location=run.device)
        run.model.load_state_dict(best["model"])
        test = evaluate(run.model, run.split, "test", batch_size=tc.eval_batch_size, amp=tc.amp, device=run.device)
        state.seconds += time.perf_counter() - t_test
        result = _result(run.config, state, test, run.out_dir)
        atomic_write(run.out_dir / "result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    return _broadcast(run.info, result)


def _train_epoch(trainer: nn.Module, module: TrainModule, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler | None,
                 windows: TrainWindows, config: RunConfig, state: TrainState, info: DistInfo,
                 device: torch.device, progress: bool) -> dict[str, Any]:
    """One pass over this rank's shard of the epoch; updates ``state.step/tokens/train_seconds``.

    The record has the mean loss and, as ``train_<name>``, the mean of every ``stats`` entry of the
    model's ``training_loss`` (e.g. ``train_loss_sid`` / ``train_loss_vid`` for COBRA).
    """
    tc = config.train
    # Dropout and negatives of this epoch depend only on (seed, epoch, rank): exact resume.
    seed = epoch_seed(tc.seed, state.epoch, info.rank)
    seed_everything(seed)
    order = epoch_order(len(windows), tc.seed, state.epoch, info.rank, info.world_size)
    steps = math.ceil(len(order) / tc.batch_size)
    trainer.train()
    loss_sum, tokens = 0.0, 0
    stat_sums: dict[str, float] = {}
    t0 = time.perf_counter()
    with _progress_bar(steps, f"epoch {state.epoch + 1}/{tc.epochs}", progress and info.is_main) as bar:
        for batch in epoch_batches(windows, tc.batch_size, order):
            loss = train_step(module.model, batch, optimizer, trainer, scheduler=scheduler, scaler=scaler,
                              amp=tc.amp, grad_clip=tc.grad_clip, device=device)
            loss_sum += loss
            for key, value in module.stats.items():
                stat_sums[key] = stat_sums.get(key, 0.0) + float(value)
            tokens += int(batch.lengths.sum())
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):,.0f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    names = sorted(stat_sums)
    loss_sum, tokens_all, n, *stats = _all_sum(info, loss_sum, tokens, steps, *(stat_sums[k] for k in names))
    state.tokens += int(tokens_all)
    state.train_seconds += seconds
    record = {"epoch": state.epoch + 1, "step": state.step, "loss": loss_sum / max(n, 1),
              "lr": optimizer.param_groups[0]["lr"], "train_seconds": round(seconds, 3),
              "tokens_per_second": round(tokens_all / max(seconds, 1e-9), 1)}
    record.update({f"train_{k}": v / max(n, 1) for k, v in zip(names, stats, strict=True)})
    return record


# ------------------------------------------------------------------------------------------------- CLI
def evaluate_run(run: str | Path, split: str = "test", decode: str | None = None) -> dict[str, Any]:
    """Metrics of a run's best weights (``python -m cobra eval --run DIR [--split S] [--decode MODE]``).

    ``--decode`` (``direct``, ``neighbor``, ``soft``, ``beam`` or the ``sparse`` ablation; COBRA runs only)
    overrides the run's decoding mode. The result has the keys of :func:`fit` plus ``split``, ``decode`` (the mode used;
    ``full`` for ID models, ``trie-beam`` for TIGER), ``eval_seconds`` and ``ms_per_user`` (wall
    milliseconds of evaluation per evaluated user).
    """
    from cobra.decode import DECODERS

    run_dir = Path(run)
    if decode is not None:
        kind = load_run_config(run_dir).kind
        if not MODELS[kind].decodes:
            raise ConfigError(f"--decode chooses a COBRA decoding mode, but {run_dir} holds a {kind!r} run, which "
                              "has a single way to score items; drop --decode")
        if decode not in DECODERS:
            raise ConfigError(f"unknown --decode {decode!r}; choose one of {', '.join(DECODERS)}")
    model, config, data = load_run(run_dir)
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)  # as in training: ms_per_user comparable to its epochs
    which = split or "test"
    state = TrainState()
    with contextlib.suppress(Exception):
        state = TrainState(**load_checkpoint(run_dir / "last.pt")["state"])
    options = {"decode": decode} if decode is not None else None
    t0 = time.perf_counter()
    try:
        metrics = evaluate(model, data, which, batch_size=config.train.eval_batch_size, score_options=options)
    except ValueError as err:  # cobra.metrics refuses NaN scores
        if "NaN" not in str(err):
            raise
        raise ConfigError(f"the model in {run_dir} gives NaN scores: its weights are broken (did training diverge?); "
                          "train it again with a lower --set train.lr") from None
    seconds = time.perf_counter() - t0
    result = _result(config, state, metrics, run_dir)
    result.update({"split": which, "decode": decode or MODELS[config.kind].decode_label(config.model),
                   "eval_seconds": round(seconds, 3),
                   "ms_per_user": round(1000 * seconds / max(metrics.get("users", 0), 1), 3)})
    return result
