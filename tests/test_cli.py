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
    assert (args.models, args.out, args.seeds) == ("cobra-cpu,tiger-cpu", "q.json", 3)
