"""DistributedDataParallel: two CPU processes (gloo) train a few steps; they share validation, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from synthetic_songs import synthetic_dataset, tiny_config

WORLD = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank: int, folder: str, port: int, form: bool = False) -> None:
    """One torchrun-like process: the same environment variables torchrun would set."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank))  # fmt: skip
    from tunesmith.training.loop import train

    dataset = synthetic_dataset(Path(folder) / "data", songs=24)
    config = tiny_config(epochs=2, batch_size=4, device="cpu")
    config.model.form_inputs = form
    result = train(config, Path(folder) / "run", dataset=dataset, progress=False)
    weights = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    torch.save({"epochs": result.state.epoch, "weights": weights}, Path(folder) / f"rank{rank}.pt")


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP is tested on Linux and macOS")
@pytest.mark.timeout(120)
def test_two_process_ddp_trains_and_rank_zero_writes(tmp_path):
    mp.spawn(worker, args=(str(tmp_path), free_port()), nprocs=WORLD, join=True)
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # one writer: no duplicated lines
    assert not list(run.glob(".*.tmp"))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert all(r["epochs"] == 2 for r in ranks)
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])  # DDP kept the replicas in step


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP is tested on Linux and macOS")
@pytest.mark.timeout(120)
def test_ranks_share_the_validation_passes_and_agree_with_one_process(tmp_path):
    """A form-aware model's two validation passes (form given, form hidden) run on different
    ranks; the figures rank 0 records are those one process computes from the saved weights."""
    from tunesmith.checkpoint import Checkpoint
    from tunesmith.encoding import Vocabulary
    from tunesmith.training.validation import validation_metrics

    mp.spawn(worker, args=(str(tmp_path), free_port(), True), nprocs=WORLD, join=True)
    recorded = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["val"]
    checkpoint = Checkpoint.load(tmp_path / "run" / "last.pt")
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    alone = validation_metrics(checkpoint.build_model(), dataset.split("val"), Vocabulary(checkpoint.vocab),
                               checkpoint.modes, checkpoint.meters, checkpoint.steps_per_quarter)  # fmt: skip
    assert recorded["hidden_pitch_bits_per_note"] != recorded["pitch_bits_per_note"]
    for key in ("loss", "bits_per_step", "pitch_bits_per_note", "hidden_bits_per_step", "hidden_pitch_bits_per_note"):
        assert recorded[key] == pytest.approx(alone[key], rel=1e-5), key
