"""Command line: ``python -m cobra <command> [options]``.

Every command takes ``--profile`` (default ``$COBRA_PROFILE`` or ``cpu``) and
``--json``; with ``--json`` the last line printed is one JSON object, so
scripts can ``tail -n 1`` it. Commands are registered in :data:`COMMANDS`
(name -> (help, add_arguments, run)); there is no if-chain on names.

A mistake (a bad flag value, flags that do not go together, a file where a
directory belongs) is one ``error: ...`` line on stderr and exit code 2;
Ctrl-C is one line saying how to resume and exit code 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cobra.config import HOME_ENV, PROFILES, CobraError, ConfigError, Interrupted, get_profile, parse_overrides

Runner = Callable[[argparse.Namespace], dict[str, Any]]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> dict`` as ``python -m cobra NAME``."""

    def register(run: Runner) -> Runner:
        COMMANDS[name] = (help, add_arguments, run)
        return run

    return register


def _print_table(result: dict[str, Any]) -> None:
    width = max(map(len, result), default=0)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        print(f"{key:<{width}}  {value}")


# ---------------------------------------------------------------- data ----
def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="a MovieLens variant, a synthetic stand-in (ml-20m-synthetic) or a dataset you "
                                     "imported (default: the profile's)")
    p.add_argument("--source", default="auto", choices=["auto", "grouplens", "recbole"],
                   help="where to fetch MovieLens from; ml-100k also works offline through the RecBole wheel")


@command("data", "download (or generate), verify and summarise a dataset", _data_args)
def _data(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.data import dataset_summary

    return dataset_summary(args.dataset or get_profile(args.profile).dataset, source=args.source)


# -------------------------------------------------------------- import ----
def _import_args(p: argparse.ArgumentParser) -> None:
    from cobra.tables import DEFAULT_COLUMNS as d

    p.add_argument("name", help="the dataset's name from now on (letters, digits, '.', '_', '-')")
    p.add_argument("--interactions", required=True, help="CSV/TSV (.gz ok) or Parquet: user, item[, timestamp, rating]")
    p.add_argument("--items", help="CSV/TSV or Parquet item table: item[, title, year, genres, tags]")
    p.add_argument("--vectors", help=".npy item vectors, one row per row of --items (the 'provided' encoder)")
    p.add_argument("--user-col", default=d.user, help=f"user column (default {d.user})")
    p.add_argument("--item-col", default=d.item, help=f"item column (default {d.item})")
    p.add_argument("--time-col", default=d.timestamp,
                   help=f"timestamp column, seconds or date-times (default {d.timestamp}; a log without it keeps "
                        "the file's order and runs without the time bias)")
    p.add_argument("--rating-col", default=d.rating, help=f"rating column (default {d.rating}; absent: 1 per row)")
    p.add_argument("--item-key-col", default=d.item_key, help=f"the item table's item column (default {d.item_key})")
    p.add_argument("--force", action="store_true", help="replace an earlier import of the same name")


@command("import", "register your own interaction log (and item table) as a dataset", _import_args)
def _import(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.data import dataset_summary
    from cobra.datasets import import_dataset
    from cobra.tables import Columns

    columns = Columns(user=args.user_col, item=args.item_col, timestamp=args.time_col, rating=args.rating_col,
                      item_key=args.item_key_col)
    import_dataset(args.name, args.interactions, args.items, args.vectors, columns=columns, force=args.force)
    return dataset_summary(args.name)


# --------------------------------------------------------------- embed ----
def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="dataset name (default: the profile's)")
    p.add_argument("--encoder", help="minilm | tfidf | qwen3 | provided (the dataset's own vectors) | any "
                                     "sentence-transformers name (default: the profile's)")


@command("embed", "encode item texts into L2-normalised vectors (cached on disk)", _embed_args)
def _embed(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.text import embed_items

    prof = get_profile(args.profile)
    emb = embed_items(args.dataset or prof.dataset, args.encoder or prof.encoder, progress=not args.json)
    return {"dataset": emb.dataset, "items": int(emb.vectors.shape[0]), "dim": int(emb.vectors.shape[1]),
            "encoder": emb.encoder, "seconds": round(emb.seconds, 3), "path": str(emb.path)}


# ---------------------------------------------------------------- eval ----
def _eval_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--baseline", help="a reference recommender: popular | random")
    source.add_argument("--run", help="a training run directory (python -m cobra train --out DIR)")
    p.add_argument("--dataset", help="dataset for --baseline (default: the profile's)")
    p.add_argument("--split", default="test", choices=["test", "valid"])
    p.add_argument("--decode", help="COBRA runs: decoding mode direct | neighbor | soft | beam | sparse "
                   "(default: the run's)")


@command("eval", "score a baseline or a trained run with the full-catalogue evaluator", _eval_args)
def _eval(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.metrics import BASELINES, evaluate_baseline

    if args.run:
        if args.dataset:
            raise ConfigError("--dataset goes with --baseline; a run is scored on the dataset it was trained on "
                              "(its config.json): drop --dataset")
        from cobra.train import evaluate_run

        return evaluate_run(args.run, split=args.split, decode=args.decode)
    if args.decode is not None:
        raise ConfigError("--decode chooses how a COBRA run decodes (eval --run DIR --decode MODE); a baseline has "
                          "one way to score items: drop --decode")
    if not args.baseline:
        raise ConfigError(f"eval needs --baseline ({' | '.join(BASELINES)}) or --run DIR")
    return evaluate_baseline(args.baseline, args.dataset or get_profile(args.profile).dataset, split=args.split)


# --------------------------------------------------------------- train ----
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="a named preset (python -m cobra presets); default hstu-<profile>")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set epochs=5 --set model.dim=32 (repeatable)")
    p.add_argument("--out", help="run directory (default: a new one under data/cache/runs); "
                   "an unfinished run there is resumed")


def cli_train(preset: str | None = None, sets: Sequence[str] = (), out: str | Path | None = None,
              profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra train --preset NAME [--set key=value ...] [--out DIR] [--profile P] [--json]``.

    ``sets`` are the ``--set`` strings. Ctrl-C raises :class:`~cobra.config.Interrupted` naming the run
    directory (its last checkpoint is intact: the same command resumes it).
    """
    from cobra.presets import get_preset
    from cobra.runs import default_run_dir
    from cobra.train import fit

    preset = preset or f"hstu-{get_profile(profile).name}"
    config = get_preset(preset, parse_overrides(list(sets)))
    run_dir = Path(out) if out else default_run_dir(config.preset)
    try:
        return fit(config, run_dir, progress=progress)
    except KeyboardInterrupt:
        how = "run the same command" if out else f"run the same command with --out {run_dir}"
        raise Interrupted(f"interrupted; {how} to resume (run directory: {run_dir})") from None


@command("train", "train a preset; checkpoints every epoch and resumes where it stopped", _train_args)
def _train(args: argparse.Namespace) -> dict[str, Any]:
    return cli_train(preset=args.preset, sets=args.set, out=args.out, profile=args.profile, progress=not args.json)


@command("presets", "list the named presets", lambda p: None)
def _presets(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.presets import PRESETS

    return {"presets": sorted(PRESETS)}


# ----------------------------------------------------------------- sid ----
def _sid_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="dataset name (default: the profile's)")
    p.add_argument("--encoder", help="item encoder (default: the profile's)")
    p.add_argument("--vectors", help="a saved (N, D) .npy matrix to quantise instead of a dataset")
    p.add_argument("--levels", type=int, help="SID depth L (default: the profile's)")
    p.add_argument("--codes", type=int, help="codes per level K (default: the profile's)")
    p.add_argument("--method", default="balanced", help="balanced | kmeans | seed-heuristic")
    p.add_argument("--seed", type=int, default=0)


@command("sid", "fit semantic IDs (residual k-means) and report their diagnostics", _sid_args)
def _sid(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.sid import SIDConfig, fit_semantic_ids
    from cobra.sid_metrics import sid_report

    for flag, value in (("--levels", args.levels), ("--codes", args.codes)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}; leave it out for the profile's")
    if args.vectors and (args.dataset or args.encoder):
        raise ConfigError("--vectors quantises a saved matrix; --dataset and --encoder choose the vectors otherwise: "
                          "pass one or the other")
    prof = get_profile(args.profile)
    if args.vectors:
        from cobra.sid import load_vectors

        vectors = load_vectors(args.vectors)
    else:
        from cobra.text import embed_items

        vectors = embed_items(args.dataset or prof.dataset, args.encoder or prof.encoder,
                              progress=not args.json).vectors
    config = SIDConfig(levels=prof.sid_levels if args.levels is None else args.levels,
                       codes=prof.sid_codes if args.codes is None else args.codes, method=args.method, seed=args.seed)
    start = time.perf_counter()
    sids = fit_semantic_ids(vectors, config)
    return sid_report(vectors, sids, seconds=time.perf_counter() - start)


# --------------------------------------------------------------- bench ----
# One subcommand per benchmark (cobra.bench.BENCHMARKS), each with its own flags, so a flag of another
# benchmark is argparse's own error. A flag's dest is the keyword argument of the benchmark's run();
# None (not given) means the benchmark's default.
def _out_arg(p: argparse.ArgumentParser) -> argparse.Action:
    return p.add_argument("--out", help="also write the JSON result to this file")


def _jobs_arg(p: argparse.ArgumentParser) -> argparse.Action:
    return p.add_argument("--jobs", type=int, help="runs trained at once, one process each (default 1)")


def _bench_quality_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--models", help="comma-separated presets "
                       "(default hstu-cpu,sasrec-cpu,hstu-sid-cpu,tiger-cpu,cobra-cpu)"),
        p.add_argument("--seeds", type=int, help="runs per model, seeds 0..N-1 (default 5)"),
        p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                       help="override a setting of every run (repeatable), e.g. model.lambda_vid=0"),
        p.add_argument("--jobs", type=int, help="runs trained at once, one process each (default 1; resumes)"),
        p.add_argument("--reference", help="the model the paired tests compare with the others "
                       "(default cobra-cpu, or the last model)"),
        p.add_argument("--resume", action="store_true", help="reuse finished runs instead of retraining"),
        _out_arg(p),
    ]


def _bench_batch_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--batch-sizes", help="comma-separated batch sizes (default 16,64,256)"),
        p.add_argument("--negatives", help="comma-separated VID negatives (default in-batch,catalogue)"),
        p.add_argument("--seeds", type=int, help="runs per cell, seeds 0..N-1 (default 3)"),
        p.add_argument("--device", help="device of the runs (default the preset's)"),
        _jobs_arg(p),
        _out_arg(p),
    ]


def _bench_tune_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--models", help="comma-separated presets "
                       "(default hstu-cpu,sasrec-cpu,hstu-sid-cpu,tiger-cpu,cobra-cpu)"),
        p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                       help="override a setting of every run (repeatable), e.g. model.decode.mode=sparse"),
        _jobs_arg(p),
        _out_arg(p),
    ]


def _bench_ablate_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--variants", help="comma-separated variants of cobra-cpu (default all; see "
                       "cobra.bench.ablate.VARIANTS)"),
        p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                       help="override a setting of every variant's base (repeatable), e.g. train.lr=0.001"),
        p.add_argument("--seeds", type=int, help="runs per variant (default 1: the preset's seed)"),
        p.add_argument("--test", action="store_true", help="also report test numbers (for variants chosen on "
                       "validation)"),
        _jobs_arg(p),
        _out_arg(p),
    ]


def _bench_jobs_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--models", help="comma-separated presets (default hstu-cpu,tiger-cpu,cobra-cpu)"),
        p.add_argument("--epochs", type=int, help="epochs per run (default 2)"),
        _out_arg(p),
    ]


def _bench_chapters_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--chapters", help="comma-separated chapter numbers (default all), e.g. 01,05"),
        p.add_argument("--timeout", type=float, help="seconds per chapter (default none)"),
        p.add_argument("--jobs", type=int, help="chapters run at once (default 1)"),
        _out_arg(p),
    ]


def _bench_scale_args(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        p.add_argument("--models", help="comma-separated models (default hstu,sasrec,hstu-sid,tiger,cobra)"),
        p.add_argument("--steps", type=int, help="measured training steps per preset (default 20)"),
        p.add_argument("--eval-budget", type=float, help="seconds: a full evaluation estimated to take longer is "
                       "extrapolated from 2,000 users instead of run (default: always run it)"),
        p.add_argument("--rescale", metavar="FILE", help="recount the epochs of a measured result for the presets "
                       "as they are now (no GPU needed; --out may be the same file)"),
        _out_arg(p),
    ]


BENCH_FLAGS: dict[str, Callable[[argparse.ArgumentParser], list[argparse.Action]]] = {
    "quality": _bench_quality_args,
    "batch": _bench_batch_args,
    "tune": _bench_tune_args,
    "ablate": _bench_ablate_args,
    "jobs": _bench_jobs_args,
    "scale": _bench_scale_args,
    "chapters": _bench_chapters_args,
}  # benchmarks not listed take no flags besides --profile and --json


def _bench_args(p: argparse.ArgumentParser) -> None:
    from cobra.bench import BENCHMARKS

    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, bench in BENCHMARKS.items():
        b = sub.add_parser(name, help=bench.help, description=bench.help)
        # Also accepted after the benchmark's name; SUPPRESS keeps a value given before it (bench --json quality).
        b.add_argument("--profile", choices=sorted(PROFILES), default=argparse.SUPPRESS, help="cpu (default) or 4090d")
        b.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON object as the last line")
        flags = BENCH_FLAGS[name](b) if name in BENCH_FLAGS else []
        b.set_defaults(bench_options=tuple(action.dest for action in flags))


@command("bench", "benchmarks that print measured ratios side by side", _bench_args)
def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from cobra.bench import BENCHMARKS

    options = {dest: getattr(args, dest) for dest in args.bench_options}
    return BENCHMARKS[args.benchmark].run(profile=args.profile, progress=not args.json, **options)


# ---------------------------------------------------------------- main ----
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cobra", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--profile", choices=sorted(PROFILES), help="cpu (default) or 4090d")
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        add_arguments(p)
        p.set_defaults(handler=run)
    return parser


def _check_home() -> None:
    """Refuse a ``$COBRA_HOME`` that cannot be a directory (a file, or under one) before any command uses it."""
    env = os.environ.get(HOME_ENV)
    if not env:
        return
    path = Path(env).expanduser()
    for where in (path, *path.parents):
        if where.exists():
            if not where.is_dir():
                raise ConfigError(f"{HOME_ENV}={env} cannot be a directory: {where} is a file; point {HOME_ENV} at a "
                                  "directory for downloads and caches (created if missing), or unset it")
            return


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_home()
        result = args.handler(args)
    except (CobraError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(str(err) if isinstance(err, Interrupted) else "interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0
