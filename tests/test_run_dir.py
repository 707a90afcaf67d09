"""Run directories through the command line: ownership (.cobra-run), Ctrl-C, hand-edited configs, divergence.

Every mistake is one ``error: ...`` line on stderr with exit code 2; Ctrl-C is one line and exit code 130.
Tiny models on MovieLens-100K (one or two epochs of a 16-dim, 1-block HSTU: a few seconds each).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cobra.train as train
from cobra.cli import main
from cobra.runs import RUN_MARKER, load_checkpoint, run_dir_problem

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "hstu-cpu", "--set", "train.epochs=1", "--set", "model.dim=16", "--set", "model.max_seq_len=8",
        "--set", "model.num_blocks=1", "--set", "train.num_threads=1"]


def train_cli(capsys, out: Path | None, *extra: str) -> tuple[int, str, str]:
    """``python -m cobra train`` with the tiny settings (later ``--set`` win); returns (exit code, stdout, stderr)."""
    argv = ["train", *TINY, *extra, "--json"] + (["--out", str(out)] if out is not None else [])
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------ ownership
def test_marker_written_and_foreign_directories_refused(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code, out, err = train_cli(capsys, run)
    assert code == 0, err
    marker = json.loads((run / RUN_MARKER).read_text())
    assert set(marker) == {"cobra", "created"}

    # a non-empty directory that is not a run: refused, nothing in it touched
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    (foreign / "best.pt").write_text("my own file")
    code, _, err = train_cli(capsys, foreign)
    assert code == 2 and "not a run directory" in error_line(err) and RUN_MARKER in err and "--out" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["best.pt", "notes.txt"]
    assert (foreign / "best.pt").read_text() == "my own file"

    # --out pointing at a file (or below one)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out_dir in (a_file, a_file / "sub"):
        code, _, err = train_cli(capsys, out_dir)
        assert code == 2 and f"{a_file} is a file, not a directory" in error_line(err)
    assert a_file.read_text() == "x"


def test_starting_over_says_what_it_removes_and_keeps_foreign_files(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train_cli(capsys, run)[0] == 0
    (run / "notes.txt").write_text("the user's")  # a file the run did not write
    (run / "last.pt").unlink()  # nothing to resume: the run starts over
    code, _, err = train_cli(capsys, run)
    assert code == 0
    assert err == f"note: starting the run in {run} over (no last.pt to resume from); removing its old best.pt, " \
                  "result.json, metrics.jsonl\n"
    assert (run / "notes.txt").read_text() == "the user's"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_run_from_before_the_marker_is_adopted(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train_cli(capsys, run)[0] == 0
    (run / RUN_MARKER).unlink()
    assert run_dir_problem(run) is None  # config.json and only files fit writes: an older cobra's run
    code, out, err = train_cli(capsys, run, "--set", "train.epochs=2")  # resumes it
    assert code == 0 and json.loads(out.splitlines()[-1])["epochs"] == 2 and err == ""
    assert (run / RUN_MARKER).is_file()
    (run / RUN_MARKER).unlink()
    (run / "notes.txt").write_text("x")  # no marker and a foreign file: not ours
    assert "not a run directory" in run_dir_problem(run)


# ------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_prints_how_to_resume_and_the_run_resumes_exactly(tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    two = ("--set", "train.epochs=2")
    code, out, _ = train_cli(capsys, tmp_path / "straight", *two)
    assert code == 0
    straight = json.loads(out.splitlines()[-1])

    real_epoch, real_step, calls = train._train_epoch, train.train_step, {"epochs": 0, "steps": 0}

    def epoch(*args, **kwargs):
        calls["epochs"] += 1
        return real_epoch(*args, **kwargs)

    def step(*args, **kwargs):
        if calls["epochs"] == 2:
            calls["steps"] += 1
            if calls["steps"] == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of epoch 2
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_epoch", epoch)
    monkeypatch.setattr(train, "train_step", step)
    run = tmp_path / "run"
    code, _, err = train_cli(capsys, run, *two)
    assert code == 130
    assert err == f"interrupted; run the same command to resume (run directory: {run})\n"
    assert load_checkpoint(run / "last.pt")["state"]["epoch"] == 1  # epoch 1's checkpoint is intact
    monkeypatch.undo()

    code, out, err = train_cli(capsys, run, *two)  # the same command
    assert code == 0 and err == ""
    resumed = json.loads(out.splitlines()[-1])
    keys = ("hr@10", "ndcg@10", "mrr", "epochs", "best_epoch", "valid_ndcg@10")
    assert {k: resumed[k] for k in keys} == {k: straight[k] for k in keys}
    wa, wb = (load_checkpoint(d / "last.pt")["model"] for d in (tmp_path / "straight", run))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ctrl_c_without_out_names_the_directory_to_pass(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from cobra.config import data_home

    def interrupted(dataset):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "load_split", interrupted)  # before anything is written
    code, _, err = train_cli(capsys, None)
    assert code == 130
    assert err.startswith(f"interrupted; run the same command with --out {data_home() / 'runs' / 'hstu-cpu-'}")
    assert err.count("\n") == 1 and "to resume" in err


# ----------------------------------------------------------------------- edited config, divergence
def test_hand_edited_config_json_is_a_clear_error(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train_cli(capsys, run)[0] == 0
    config = json.loads((run / "config.json").read_text())
    config["model"]["dim"] = 32
    (run / "config.json").write_text(json.dumps(config))

    assert main(["eval", "--run", str(run), "--json"]) == 2
    err = error_line(capsys.readouterr().err)
    assert "best.pt does not fit the model that" in err and "config.json" in err and "size mismatch" in err

    code, _, err = train_cli(capsys, run, "--set", "model.dim=32")  # resume with settings that match the edit
    assert code == 2 and "last.pt does not fit the model" in error_line(err)

    code, _, err = train_cli(capsys, run)  # the original command: the run's config differs now
    assert code == 2 and "different config (model.dim)" in error_line(err)
    assert "resume=False" not in err and "new --out" in err and f"delete {run}" in err


def test_diverging_loss_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code, _, err = train_cli(capsys, tmp_path / "run", "--set", "train.lr=1e12")
    assert code == 2
    assert "training diverged in epoch 1" in error_line(err) and "nan" in err
    assert "lower" in err and "--set train.lr=0.001" in err  # the preset's rate
    assert "scores contain NaN" not in err


def test_damaged_checkpoint_names_file_without_torch_advice(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train_cli(capsys, run)[0] == 0
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:1000])  # torn
    code, _, err = train_cli(capsys, run)
    assert code == 2 and f"checkpoint {run / 'last.pt'} is damaged" in error_line(err)
    assert "weights_only" not in err and "restore it" in err and "delete" in err
