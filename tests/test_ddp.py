"""DDP smoke test: ``torchrun`` with 2 CPU processes (gloo) trains a few steps; both ranks end identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from cobra.data import build_sequences, leave_one_out, synthetic_movielens
    from cobra.presets import get_preset
    from cobra.train import fit

    out = Path(sys.argv[1])
    df = synthetic_movielens(num_users=96, num_items=60, num_interactions=96 * 20, seed=5, min_seq_len=10)
    split = leave_one_out(build_sequences(df, 96), 60)
    config = get_preset("hstu-cpu", {
        "model.dim": 16, "model.max_seq_len": 10, "model.num_blocks": 1, "epochs": 2, "batch_size": 16,
        "windows": "last",
        "patience": 0, "device": "cpu", "deterministic": False, "loss": "sampled_softmax", "num_negatives": 8,
        "num_threads": 1,
    })

    def keep(record, model):
        if record["epoch"] == 2:
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                       out / f"rank{record['rank']}.pt")
            (out / f"rank{record['rank']}.steps").write_text(str(record["step"]))

    result = fit(config, out / "run", progress=False, split=split, callback=keep)
    (out / f"result{dist.get_rank()}.txt").write_text(str(result["ndcg@10"]))
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_stay_in_sync(tmp_path: Path) -> None:
    if not torch.distributed.is_available():
        pytest.skip("torch was built without torch.distributed")
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           f"--master_port={_free_port()}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "DDP ranks diverged"
    # 96 users -> 94..96 windows, 2 ranks x batch 16 -> 3 steps per epoch on each rank
    assert (tmp_path / "rank0.steps").read_text() == (tmp_path / "rank1.steps").read_text() == "6"
    # rank 0 alone writes the run directory, and both ranks return its result
    run = tmp_path / "run"
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "result0.txt").read_text() == (tmp_path / "result1.txt").read_text()
    trained = torch.load(run / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(trained[k], w0[k]) for k in w0)
