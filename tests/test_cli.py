"""The command line: each command's ``--json`` ends with one JSON object carrying its documented keys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cobra.cli import main

METRIC_KEYS = [f"{m}@{k}" for m in ("hr", "ndcg") for k in (1, 5, 10, 50, 200)] + ["mrr"]


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    return json.loads(last)


def test_data_ml100k(capsys):
    out = run_json(capsys, "data", "--dataset", "ml-100k")
    assert set(out) >= {"dataset", "users", "items", "interactions", "min_seq_len", "median_seq_len", "max_seq_len"}
    assert (out["users"], out["items"], out["interactions"]) == (943, 1682, 100_000)
    assert out["min_seq_len"] >= 20


def test_eval_popular_matches_library(capsys):
    from cobra.metrics import evaluate_baseline

    out = run_json(capsys, "eval", "--baseline", "popular", "--dataset", "ml-100k")
    assert set(out) >= {"model", "split", "users", *METRIC_KEYS}
    assert out["split"] == "test" and out["users"] == 943
    assert out == json.loads(json.dumps(evaluate_baseline("popular", "ml-100k", split="test")))
    valid = run_json(capsys, "eval", "--baseline", "popular", "--dataset", "ml-100k", "--split", "valid")
    assert valid["split"] == "valid" and valid["ndcg@10"] != out["ndcg@10"]


def test_embed_tfidf(capsys):
    out = run_json(capsys, "embed", "--dataset", "ml-100k", "--encoder", "tfidf")
    assert set(out) >= {"dataset", "items", "dim", "encoder", "seconds", "path"}
    assert out["items"] == 1682 and out["dim"] > 0


def test_errors_are_one_line_for_people(capsys):
    assert main(["data", "--dataset", "ml-7m"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ml-100k" in err and "Traceback" not in err
    assert main(["eval", "--dataset", "ml-100k"]) == 2
    assert "--baseline" in capsys.readouterr().err


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "cobra", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for name in ("data", "embed", "eval", "sid", "bench"):
        assert name in proc.stdout


@pytest.mark.parametrize("profile", ["tpu"])
def test_unknown_profile_is_refused(profile):
    with pytest.raises(SystemExit):
        main(["data", "--profile", profile])


def test_eval_decode_and_bench_out_flags_parse():
    from cobra.cli import build_parser

    args = build_parser().parse_args(["eval", "--run", "runs/x", "--decode", "beam", "--json"])
    assert (args.run, args.decode) == ("runs/x", "beam")
    args = build_parser().parse_args(["bench", "quality", "--models", "cobra-cpu,tiger-cpu", "--out", "q.json"])
    assert (args.models, args.out, args.seeds) == ("cobra-cpu,tiger-cpu", "q.json", None)  # None: not given


def one_error_line(capsys, *argv: str) -> str:
    """Run the CLI; it must fail with exit code 2 and exactly one ``error: ...`` line on stderr."""
    assert main([*argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("argv", "says"), [
    (["bench", "quality", "--seeds", "-1"], "--seeds"),
    (["bench", "quality", "--seeds", "0"], "must be >= 1, got 0"),
    (["bench", "quality", "--models", ""], "--models names no preset"),
    (["bench", "quality", "--models", " , "], "--models names no preset"),
    (["bench", "batch", "--batch-sizes", "a,b"], "--batch-sizes takes comma-separated positive integers"),
    (["bench", "batch", "--batch-sizes", "16,0"], "--batch-sizes"),
    (["bench", "batch", "--jobs", "0"], "--jobs must be >= 1"),
    (["bench", "batch", "--device", "gpu0"], "unknown --device"),
    (["sid", "--levels", "0", "--codes", "0"], "--levels must be >= 1, got 0"),
    (["sid", "--codes", "0"], "--codes must be >= 1, got 0"),
    (["sid", "--vectors", "v.npy", "--dataset", "ml-100k"], "--vectors"),
    (["eval", "--baseline", "popular", "--decode", "beam"], "drop --decode"),
    (["eval", "--run", "runs/x", "--dataset", "ml-100k"], "drop --dataset"),
    (["bench", "tune", "--set", "train.lr=0.01"], "--set train.lr is a key of the tuning grid"),
    (["bench", "ablate", "--set", "model.nope=1"], "unknown key 'model.nope'"),
])
def test_user_mistakes_are_one_error_line(capsys, argv, says):
    assert says in one_error_line(capsys, *argv)


@pytest.mark.parametrize(("argv", "extra"), [
    (["bench", "batch", "--set", "model.dim=8"], "--set model.dim=8"),
    (["bench", "batch", "--resume"], "--resume"),
    (["bench", "quality", "--negatives", "in-batch", "--batch-sizes", "16"], "--negatives in-batch --batch-sizes 16"),
    (["bench", "tune", "--seeds", "2"], "--seeds 2"),
    (["bench", "speed", "--seeds", "2"], "--seeds 2"),
    (["bench", "data", "--out", "x.json"], "--out x.json"),
    (["bench", "sid", "--models", "hstu-cpu"], "--models hstu-cpu"),
])
def test_bench_refuses_flags_of_other_benches(capsys, argv, extra):
    """Each benchmark is a subcommand with only its own flags: another's is argparse's usage error (exit 2)."""
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--json"])
    assert stop.value.code == 2
    assert f"error: unrecognized arguments: {extra}\n" in capsys.readouterr().err


def test_bench_profile_and_json_before_or_after_the_benchmark():
    from cobra.cli import build_parser

    for argv in (["bench", "--json", "--profile", "4090d", "quality"],
                 ["bench", "quality", "--json", "--profile", "4090d"]):
        args = build_parser().parse_args(argv)
        assert (args.benchmark, args.json, args.profile) == ("quality", True, "4090d")
    args = build_parser().parse_args(["bench", "data"])
    assert (args.json, args.profile, args.bench_options) == (False, None, ())


def test_every_benchmark_is_a_module_with_run():
    import importlib

    from cobra.bench import BENCHMARKS

    assert sorted(BENCHMARKS) == ["ablate", "batch", "chapters", "data", "jobs", "quality", "scale", "sid", "speed",
                                  "tune"]
    for name, bench in BENCHMARKS.items():
        module = importlib.import_module(bench.module)
        assert callable(module.run) and f"python -m cobra bench {name}" in module.__doc__


def test_bench_out_must_be_a_file(capsys, tmp_path):
    err = one_error_line(capsys, "bench", "quality", "--models", "hstu-cpu", "--out", str(tmp_path))
    assert "is a directory" in err


def test_readme_bench_commands_pass_their_flags(monkeypatch, tmp_path, capsys):
    """The README's bench command lines reach the benchmark with their flags (the benchmark itself stubbed)."""
    import cobra.bench.batch as bb
    import cobra.bench.quality as tb

    calls = []
    monkeypatch.setattr(tb, "bench_quality", lambda models, seeds, **kw: calls.append((list(models), seeds, kw)) or {})
    monkeypatch.setattr(bb, "bench_batch", lambda **kw: calls.append(kw) or {})
    out = str(tmp_path / "r.json")
    run_json(capsys, "bench", "quality", "--models", "hstu-cpu,sasrec-cpu,hstu-sid-cpu", "--seeds", "3")
    run_json(capsys, "bench", "quality", "--resume", "--seeds", "3", "--out", out)
    run_json(capsys, "bench", "quality", "--models", "cobra-cpu", "--set", "model.decode.mode=sparse", "--set",
             "train.num_threads=1", "--seeds", "3", "--out", out)
    run_json(capsys, "bench", "batch", "--device", "cuda", "--jobs", "18", "--seeds", "3", "--out", out)
    assert calls[0][:2] == (["hstu-cpu", "sasrec-cpu", "hstu-sid-cpu"], 3) and not calls[0][2]["resume"]
    assert calls[1][0] == ["hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", "tiger-cpu", "cobra-cpu"] and calls[1][2]["resume"]
    assert calls[2][2]["overrides"] == {"model.decode.mode": "sparse", "train.num_threads": 1}
    assert {k: calls[3][k] for k in ("device", "jobs", "seeds", "batch_sizes")} == {
        "device": "cuda", "jobs": 18, "seeds": 3, "batch_sizes": [16, 64, 256]}


def test_cobra_home_pointing_at_a_file(capsys, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.write_text("not a directory")
    monkeypatch.setenv("COBRA_HOME", str(home))
    assert "COBRA_HOME" in one_error_line(capsys, "data", "--dataset", "ml-100k")
    monkeypatch.setenv("COBRA_HOME", str(home / "below"))
    assert f"{home} is a file" in one_error_line(capsys, "embed", "--dataset", "ml-100k")


def test_ctrl_c_in_bench_quality_says_resume(capsys, monkeypatch):
    import cobra.bench.quality as tb

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tb, "bench_quality", interrupted)
    assert main(["bench", "quality", "--models", "hstu-cpu", "--json"]) == 130
    assert capsys.readouterr().err == "interrupted; run the same command with --resume to reuse the finished runs\n"
    assert main(["bench", "quality", "--models", "hstu-cpu", "--resume"]) == 130
    assert capsys.readouterr().err == "interrupted; run the same command to resume\n"
