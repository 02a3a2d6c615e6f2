"""Shared fixtures: a tiny trained checkpoint (session-scoped) for every stage's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic_songs import synthetic_dataset, tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """A finished ``tiny`` training run on the synthetic corpus: its :class:`RunResult`."""
    from tunesmith.training.loop import train

    folder = tmp_path_factory.mktemp("tiny_run")
    dataset = synthetic_dataset(folder / "data")
    return train(tiny_config(epochs=3), folder / "run", dataset=dataset, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """Path of the tiny run's ``best.pt`` (loads with ``tunesmith.checkpoint.Checkpoint.load``)."""
    return tiny_run.run_dir / "best.pt"
