"""Training: the tiny run learns, checkpoints round-trip, resume continues the same run, bad input."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from synthetic_songs import synthetic_dataset, tiny_config
from tunesmith import cli
from tunesmith.config import ModelConfig
from tunesmith.errors import TunesmithError
from tunesmith.checkpoint import Checkpoint
from tunesmith.model import MelodyLSTM
from tunesmith.training import data as batching
from tunesmith.training.loop import train


def test_tiny_run_learns_and_writes_its_folder(tiny_run, tiny_checkpoint):
    history = tiny_run.state.history
    assert tiny_run.reason == "done" and len(history) == 3
    assert history[-1]["val"]["loss"] < history[0]["val"]["loss"]
    folder = tiny_run.run_dir
    for name in ("config.toml", "metrics.jsonl", "training.png", "last.pt", "best.pt"):
        assert (folder / name).is_file(), name
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    checkpoint = Checkpoint.load(tiny_checkpoint)
    for key in ("epoch", "optimizer", "scheduler", "rng", "history", "run"):
        assert key in checkpoint.extra, key
    assert checkpoint.modes == ["<unk>", "major", "minor"] and checkpoint.meters[0] == "<unk>"
    assert checkpoint.metrics["loss"] == pytest.approx(checkpoint.metrics["best"]["loss"])
    assert checkpoint.metrics["best"]["loss"] == min(h["val"]["loss"] for h in history)
    assert checkpoint.training_config().train.epochs == 3


def test_checkpoint_save_load_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = MelodyLSTM(ModelConfig(hidden=24, layers=2, embedding=8), 12, 3, 4).eval()
    vocab = ["<pad>", "<s>", "</s>", "_", "r"] + [str(p) for p in range(60, 67)]
    Checkpoint.from_model(model, vocab=vocab, modes=["<unk>", "major", "minor"], meters=["<unk>", "a", "b", "c"],
                          steps_per_quarter=4).save(tmp_path / "m.pt")  # fmt: skip
    loaded = Checkpoint.load(tmp_path / "m.pt").build_model()
    tokens, positions = torch.randint(0, 12, (3, 20)), torch.randint(0, 16, (3, 20))
    mode, meter = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 1])
    assert torch.equal(model(tokens, positions, mode, meter)[0], loaded(tokens, positions, mode, meter)[0])
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_resume_continues_the_same_run(tmp_path):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    straight = train(tiny_config(epochs=2), tmp_path / "straight", dataset=dataset, progress=False)
    first = train(tiny_config(epochs=1), tmp_path / "split", dataset=dataset, progress=False)
    assert first.state.epoch == 1
    resumed = train(tiny_config(epochs=2), tmp_path / "split", dataset=dataset, resume=True, progress=False)
    assert resumed.state.epoch == 2 and len(resumed.state.history) == 2
    a, b = Checkpoint.load(tmp_path / "straight" / "last.pt"), Checkpoint.load(tmp_path / "split" / "last.pt")
    steps = lambda ckpt: ckpt.extra["optimizer"]["state"][0]["step"]  # noqa: E731
    assert steps(b) == steps(a) > steps(Checkpoint.load(tmp_path / "split" / "best.pt")) / 2
    for name, tensor in a.state_dict.items():
        assert torch.allclose(tensor, b.state_dict[name], atol=1e-6), name
    assert straight.state.history[-1]["val"]["loss"] == pytest.approx(resumed.state.history[-1]["val"]["loss"])


def test_sigterm_saves_last_and_resume_finishes(tmp_path, monkeypatch):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    real_pad_batch, calls = batching.pad_batch, []

    def pad_batch_then_terminate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # SIGTERM arrives during the second batch of the first epoch
            os.kill(os.getpid(), signal.SIGTERM)
        return real_pad_batch(*args, **kwargs)

    monkeypatch.setattr(batching, "pad_batch", pad_batch_then_terminate)
    stopped = train(tiny_config(epochs=2, batch_size=4), tmp_path / "run", dataset=dataset, progress=False)
    assert stopped.reason == "interrupted" and stopped.exit_code == 128 + signal.SIGTERM
    saved = Checkpoint.load(tmp_path / "run" / "last.pt")
    assert saved.extra["epoch"] == 0 and saved.extra["run"]["epoch_step"] == 2
    monkeypatch.setattr(batching, "pad_batch", real_pad_batch)
    done = train(tiny_config(epochs=2, batch_size=4), tmp_path / "run", dataset=dataset, resume=True, progress=False)
    assert done.reason == "done" and done.state.epoch == 2


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "nosuch"], "unknown preset 'nosuch'"),
    (["train", "--preset", "tiny", "--set", "model.hiden=3"], "unknown setting 'model.hiden'"),
    (["train", "--preset", "tiny", "--set", "model.hidden=big"], "model.hidden must be an integer"),
    (["train", "--resume", "{tmp}"], "nothing to resume"),
    (["train", "--preset", "tiny", "--corpus", "{tmp}", "--out", "{tmp}/run"], "no files found"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    assert cli.main([arg.replace("{tmp}", str(tmp_path)) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_incompatible_checkpoint_is_refused(tmp_path, tiny_checkpoint):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "last.pt")
    with pytest.raises(TunesmithError, match="checkpoint version 99"):
        Checkpoint.load(tmp_path / "last.pt")
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2


def test_batches_cover_every_chunk_and_shard_evenly(tmp_path):
    dataset = synthetic_dataset(tmp_path, songs=30)
    modes, meters = batching.condition_vocabularies(dataset.split("train"))
    chunks = batching.chunk(batching.tensorize(dataset.examples, dataset.vocab, modes, meters, 4), 16)
    assert all(len(c.targets) <= 16 for c in chunks)
    whole = batching.epoch_batches(chunks, 5, seed=3)
    assert sorted(id(c) for b in whole for c in b) == sorted(id(c) for c in chunks)
    shards = [batching.epoch_batches(chunks, 5, seed=3, rank=r, world=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    inputs, positions, targets, mode, meter = batching.pad_batch(whole[0], dataset.vocab.pad)
    assert inputs.shape == positions.shape == targets.shape and mode.shape == meter.shape == (len(whole[0]),)


def test_ranks_take_batches_of_about_one_length_at_each_step():
    """The ranks synchronise every update, so a step costs its longest batch: the ranks' batches
    at one step are neighbours in length order, every song is taken once, none is empty."""
    from types import SimpleNamespace

    lengths = [5 + (37 * i) % 200 for i in range(103)]
    chunks = [SimpleNamespace(targets=[0] * n) for n in lengths]
    assert batching.epoch_batches(chunks, 4, seed=9) == batching.epoch_batches(chunks, 4, seed=9, rank=0, world=1)
    for world in (2, 3):
        shards = [batching.epoch_batches(chunks, 4, seed=9, rank=r, world=world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1 and all(b for s in shards for b in s)
        taken = [id(c) for s in shards for b in s for c in b]
        assert len(taken) == len(set(taken)) == len(chunks)  # 103 songs: the short last group is split, not dropped
        longest = [max(len(c.targets) for c in b) for s in shards for b in s]
        spread = [max(len(c.targets) for b in step for c in b) - min(len(c.targets) for b in step for c in b)
                  for step in zip(*shards)]  # fmt: skip
        assert max(spread) <= 0.25 * max(longest)  # a random pairing of buckets spans most of the range


def test_cli_trains_on_the_test_files_then_refuses_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    data = str(Path(__file__).parent / "data")
    argv = ["train", "--preset", "tiny", "--corpus", data, "--set", "corpus.val_fraction=0.5", "--set",
            "corpus.workers=1", "--set", "train.epochs=1", "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    checkpoint = Checkpoint.load(tmp_path / "run" / "best.pt")
    assert checkpoint.extra["epoch"] == 1 and checkpoint.config["corpus"]["sources"] == [data]
    assert cli.main(argv) == 2  # the folder already holds a run: --resume or another --out


def test_weight_average_is_validated_saved_and_resumed(tmp_path):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    straight = train(tiny_config(epochs=2, average=0.9), tmp_path / "straight", dataset=dataset, progress=False)
    train(tiny_config(epochs=1, average=0.9), tmp_path / "split", dataset=dataset, progress=False)
    train(tiny_config(epochs=2, average=0.9), tmp_path / "split", dataset=dataset, resume=True, progress=False)
    a, b = Checkpoint.load(tmp_path / "straight" / "last.pt"), Checkpoint.load(tmp_path / "split" / "last.pt")
    for x, y in ((a.state_dict, b.state_dict), (a.extra["training_model"], b.extra["training_model"])):
        for name, tensor in x.items():
            assert torch.allclose(tensor, y[name], atol=1e-6), name
    assert not torch.equal(a.state_dict["head.weight"], a.extra["training_model"]["head.weight"])
    saved = {k: v for k, v in a.build_model().state_dict().items()}
    assert all(torch.equal(saved[k], v) for k, v in straight.model.state_dict().items())


def test_focus_epochs_train_the_last_epochs_on_the_sources_songs_alone(tmp_path):
    dataset = synthetic_dataset(tmp_path / "data", songs=48)
    train_songs = dataset.split("train")
    for example in train_songs[: len(train_songs) * 3 // 4]:
        example.extra = True  # as if read from corpus.train_sources
    config = tiny_config(epochs=3, focus_epochs=1, batch_size=4)
    config.model.form_inputs = True
    run = train(config, tmp_path / "run", dataset=dataset, progress=False)
    from tunesmith.form.inputs import corpus_forms, corpus_pickups

    saved = Checkpoint.load(tmp_path / "run" / "best.pt").extra  # default forms: the sources' songs alone
    assert saved["forms"] == corpus_forms([e.song for e in train_songs if not e.extra]) != corpus_forms([e.song for e in train_songs])
    assert saved["pickups"] == corpus_pickups([e.song for e in train_songs if not e.extra])

    def batches(examples, epoch):
        modes, meters = batching.condition_vocabularies(train_songs)
        songs = batching.tensorize(examples, dataset.vocab, modes, meters, dataset.steps_per_quarter, form=True)
        chunks = batching.chunk(songs, config.train.chunk_steps)
        return len(batching.epoch_batches(chunks, 4, config.train.seed * 100_003 + epoch))

    own = [e for e in train_songs if not e.extra]
    assert run.state.updates == batches(train_songs, 0) + batches(train_songs, 1) + batches(own, 2)
    assert batches(own, 2) < batches(train_songs, 2)
    with pytest.raises(TunesmithError, match="focus_epochs"):
        for example in own:
            example.extra = True
        train(config, tmp_path / "none", dataset=dataset, progress=False)


def test_corpus_option_replaces_the_presets_sources_and_its_training_only_songs():
    import argparse

    from tunesmith.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, default_preset="erk")
    shipped = config_from_args(parser.parse_args([]))
    assert shipped.corpus.sources == ["essen/erk"] and shipped.corpus.train_sources == ["essen/german"]
    mine = config_from_args(parser.parse_args(["--corpus", "my_tunes/"]))
    assert mine.corpus.sources == ["my_tunes/"] and mine.corpus.train_sources == []
    both = config_from_args(parser.parse_args(["--corpus", "a/", "--set", 'corpus.train_sources=["b/"]']))
    assert both.corpus.train_sources == ["b/"]


def test_the_time_guard_prices_the_next_epoch_by_its_tokens():
    """A focused epoch on a third of the songs costs a third of the time: the guard lets it start
    where the mean epoch's time would not fit, and stops one that would end past the budget."""
    from tunesmith.training.loop import over_budget

    all_songs = [{"seconds": 67.0, "tokens_per_s": 12_000} for _ in range(7)]  # 469 s; 804,000 tokens each
    assert not over_budget(all_songs, 241_000, 8.9)  # 469 + 20 s ≤ 534 s (the mean, 67 s, would not fit)
    assert over_budget(all_songs, 804_000, 8.9)  # 469 + 67 s > 534 s
    later = all_songs + [{"seconds": 22.0, "tokens_per_s": 11_000} for _ in range(3)]  # 535 s
    assert over_budget(later, 241_000, 8.9) and not over_budget(later, 241_000, 9.5) and not over_budget(later, 241_000, 0)


def test_keep_memory_changes_where_memory_comes_from_not_a_number(tmp_path):
    """``train.keep_memory`` (glibc's malloc keeps each step's buffers until the epoch ends, then
    hands them back) trains the very same model: every epoch's figures are equal."""
    import sys

    from tunesmith.training.process import keep_freed_memory, release_freed_memory

    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    runs = []
    for keep in (False, True):
        config = tiny_config(epochs=2)
        config.train.keep_memory = keep
        runs.append(train(config, tmp_path / f"run-{keep}", dataset=dataset, progress=False).state.history)
    assert [h["val"] for h in runs[0]] == [h["val"] for h in runs[1]]
    assert [h["train_loss"] for h in runs[0]] == [h["train_loss"] for h in runs[1]]
    glibc = sys.platform.startswith("linux") and keep_freed_memory()
    assert release_freed_memory() == glibc  # elsewhere both are no-ops that say so


def test_copy_scores_and_beta2_train_save_and_generate(tmp_path):
    """A run with ``model.copy_logits`` and ``train.beta2`` learns its copy layer, and the saved
    file samples with it (the copy layer is in the checkpoint; generation uses the same logits)."""
    from tunesmith.generate import GenerationConfig, Generator

    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    config = tiny_config(epochs=2, beta2=0.98)
    config.model.copy_logits = True
    result = train(config, tmp_path / "run", dataset=dataset, progress=False)
    checkpoint = Checkpoint.load(result.run_dir / "best.pt")
    assert checkpoint.training_config().model.copy_logits and checkpoint.training_config().train.beta2 == 0.98
    model = checkpoint.build_model()
    assert model.copy.weight.abs().sum() > 0  # it starts at zero: training moved it
    melodies = Generator.from_checkpoint(result.run_dir / "best.pt", "cpu").generate(GenerationConfig(bars=4, seed=0))
    assert melodies and melodies[0].song.notes


def test_a_cpu_run_keeps_few_onednn_kernels_unless_told_otherwise(monkeypatch):
    from tunesmith.training.process import KERNEL_CACHE, limit_kernel_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")  # the user's own setting wins
    limit_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"
