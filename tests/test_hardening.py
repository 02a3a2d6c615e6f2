"""Hardening (issue 8), one test per family: checkpoints never run code, every float setting is
finite and in range, a run's output folder is its own, failures are one line, caches heal."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from synthetic_songs import synthetic_dataset, tiny_config
from tunesmith import cli
from tunesmith.checkpoint import Checkpoint
from tunesmith.config import Config, apply_overrides
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.pipeline import EvaluateConfig
from tunesmith.rundir import reserve_run_folder
from tunesmith.training import loop
from tunesmith.training.loop import train

DATA = Path(__file__).parent / "data"
SRC = Path(__file__).resolve().parents[1] / "src"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


# --- 1. a checkpoint never runs code -------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: proof that a load ran code from the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_checkpoint_never_runs(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "PWNED"
    payload = torch.load(tiny_checkpoint, weights_only=True)  # a real checkpoint with a payload inside
    payload["metrics"] = _Payload(str(marker))
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    resume = tmp_path / "run"
    resume.mkdir()
    shutil.copy(evil, resume / "last.pt")

    with pytest.raises(TunesmithError, match="refused for safety"):
        Checkpoint.load(evil)
    from tunesmith.generate import Generator

    with pytest.raises(TunesmithError, match="refused for safety"):
        Generator.from_checkpoint(evil, "cpu")
    for argv in (["generate", "--model", str(evil), "--bars", "2", "--out", str(tmp_path / "g")],
                 ["evaluate", "--model", str(evil), "--out", str(tmp_path / "e")],
                 ["train", "--resume", str(resume)]):  # fmt: skip
        assert cli.main(argv) == 2, argv
        assert "refused for safety" in one_line_error(capsys)
    assert not marker.exists()
    assert not (tmp_path / "g").exists() and not (tmp_path / "e").exists()


def test_checkpoints_round_trip_and_refuse_damage(tmp_path, tiny_checkpoint):
    checkpoint = Checkpoint.load(tiny_checkpoint)
    checkpoint.save(tmp_path / "copy.pt")
    again = Checkpoint.load(tmp_path / "copy.pt")
    assert all(torch.equal(t, again.state_dict[k]) for k, t in checkpoint.state_dict.items())
    assert again.training_config() == checkpoint.training_config()
    with pytest.raises(TunesmithError, match="extra.where holds a PosixPath, not plain data"):  # it would not load back
        dataclasses.replace(checkpoint, extra={"where": tmp_path}).save(tmp_path / "object.pt")
    assert not list(tmp_path.glob("*object*"))
    (tmp_path / "cut.pt").write_bytes((tmp_path / "copy.pt").read_bytes()[:5000])
    with pytest.raises(TunesmithError, match="not a readable checkpoint"):
        Checkpoint.load(tmp_path / "cut.pt")
    data = torch.load(tiny_checkpoint, weights_only=True)
    for key, value, message in (("vocab", "abc", "vocab must be"), ("steps_per_quarter", 0, "steps_per_quarter"),
                                ("model_config", {"hidden": "x"}, "model.hidden must be an integer")):  # fmt: skip
        torch.save({**data, key: value}, tmp_path / "bad.pt")
        with pytest.raises(TunesmithError, match=message):
            Checkpoint.load(tmp_path / "bad.pt")
    nan_weights = {**data["model"], "head.bias": torch.full_like(data["model"]["head.bias"], float("nan"))}
    torch.save({**data, "model": nan_weights}, tmp_path / "nan.pt")
    with pytest.raises(TunesmithError, match="NaN or infinite"):
        Checkpoint.load(tmp_path / "nan.pt")
    # a version-2 file (resume state at the top level) is converted on load
    old = {k: v for k, v in data.items() if k != "extra"} | {"version": 2} | data["extra"]
    torch.save(old, tmp_path / "v2.pt")
    converted = Checkpoint.load(tmp_path / "v2.pt")
    assert converted.extra["epoch"] == checkpoint.extra["epoch"] and converted.vocab == checkpoint.vocab


# --- 2. every float setting is finite and in range -----------------------------------------------


def _float_fields(cls: type, prefix: str):
    """(dotted name, list-valued?) of every float setting of a config dataclass, nested ones too."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            yield from _float_fields(hint, f"{prefix}{item.name}.")
        elif hint is float or hint == list[float]:
            yield f"{prefix}{item.name}", hint != float


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_values_of_every_float_setting_are_refused(bad):
    names = list(_float_fields(Config, ""))
    assert {"train.lr", "model.dropout", "corpus.val_fraction", "corpus.accepted_durations"} <= {n for n, _ in names}
    for name, is_list in names:
        text = f"[0.5, {bad}]" if is_list else bad
        with pytest.raises(TunesmithError, match=name.replace(".", r"\.")):  # --set, TOML, a web form
            apply_overrides(Config(), [f"{name}={text}"])
        config = Config()  # the Python API: the same rule in validate()
        section, field = name.split(".")
        setattr(getattr(config, section), field, [0.5, float(bad)] if is_list else float(bad))
        with pytest.raises(TunesmithError, match=name.replace(".", r"\.")):
            config.validate()
    for name, is_list in _float_fields(EvaluateConfig, "evaluate."):
        config = EvaluateConfig()
        *path, field = name.split(".")[1:]
        target = config
        for part in path:
            target = getattr(target, part)
        setattr(target, field, float(bad))
        with pytest.raises(TunesmithError, match="finite"):
            config.validate()
    with pytest.raises(TunesmithError, match=r"train\.lr must be in \(0, 1\]"):
        apply_overrides(Config(), ["train.lr=5"])


def test_training_stops_on_a_non_finite_loss_and_never_saves_it(tmp_path, monkeypatch):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    real_step, calls = torch.optim.Adam.step, []

    def step_then_poison(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 8:  # in the second epoch (6 batches per epoch): the weights turn to NaN
            with torch.no_grad():
                for group in self.param_groups:
                    for param in group["params"]:
                        param.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_poison)
    with pytest.raises(TunesmithError, match="training loss became nan in epoch 2"):
        train(tiny_config(epochs=3, batch_size=4), tmp_path / "run", dataset=dataset, progress=False)
    best = Checkpoint.load(tmp_path / "run" / "best.pt")  # epoch 1's, finite (load checks it)
    assert best.extra["epoch"] == 1 and Checkpoint.load(tmp_path / "run" / "last.pt").extra["epoch"] == 1


# --- 3. a run's output folder is its own ---------------------------------------------------------


def test_two_runs_into_one_folder_give_one_complete_run_and_one_clear_error(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    with reserve_run_folder(out) as run:  # the first run is under way...
        (run.tmp / "report.md").write_text("first", encoding="utf-8")
        assert cli.main(["evaluate", "--model", str(tiny_checkpoint), "--out", str(out)]) == 2
        assert "another tunesmith run is writing to" in one_line_error(capsys)
        assert not out.exists()  # ...and nothing shows until it is complete
    assert [p.name for p in out.iterdir()] == ["report.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no lock, no temp folder left
    # a finished folder is never overwritten, and the refusal comes before any work
    assert cli.main(["evaluate", "--model", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "is not empty" in one_line_error(capsys)
    assert (out / "report.md").read_text(encoding="utf-8") == "first"


def test_two_concurrent_processes_into_one_folder(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "pickup.krn", corpus)
    env = {**os.environ, "PYTHONPATH": str(SRC), "TUNESMITH_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "tunesmith", "prepare", "--corpus", str(corpus), "--set", "corpus.workers=1",
            "--set", "corpus.val_fraction=0", "--json", "--no-progress", "--out", str(tmp_path / "out")]  # fmt: skip
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read().strip()) for p in runs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    err = next(err for code, _, err in results if code == 2)
    assert "\n" not in err and ("another tunesmith run is writing" in err or "is not empty" in err), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dataset.json", "report.json", "vocab.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus", "out"]


# --- 4. failures are one line ---------------------------------------------------------------------


@pytest.mark.parametrize("out", ["/proc/tunesmith-x", "{tmp}/a-file", "/dev/null", "{tmp}/a-file/below"])
def test_bad_train_out_is_one_line_before_any_work(out, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a-file").write_text("mine", encoding="utf-8")
    argv = ["train", "--preset", "tiny", "--corpus", str(DATA / "pickup.krn"), "--out", out.format(tmp=tmp_path)]
    assert cli.main(argv) == 2
    assert "tunesmith train: error:" in one_line_error(capsys)
    assert not (tmp_path / "cache").exists()  # refused before reading the corpus
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "mine"


def test_a_full_disk_is_one_line_and_leaves_no_temp_files(tmp_path, capsys, monkeypatch):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    real_save = torch.save

    def save_until_full(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(TunesmithError, match="cannot write checkpoint .*No space left on device"):
        train(tiny_config(epochs=1), tmp_path / "run", dataset=dataset, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "run").exists()

    def prepare_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cache" / "x.json"))

    monkeypatch.setattr("tunesmith.corpus.dataset.prepare", prepare_full)
    assert cli.main(["prepare", "--corpus", str(DATA), "--out", str(tmp_path / "p")]) == 2
    assert "No space left on device: '" in one_line_error(capsys)
    assert not (tmp_path / "p").exists()


def test_an_internal_error_is_one_line_exit_1_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("tunesmith.corpus.dataset.prepare", broken)
    assert cli.main(["prepare", "--corpus", str(DATA)]) == 1
    err = one_line_error(capsys)
    assert "internal error: ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "prepare", "--corpus", str(DATA)])
    with pytest.raises(ZeroDivisionError):
        cli.main(["prepare", "--debug", "--corpus", str(DATA)])


# --- 5. caches heal, are keyed by paths too, and are shared ---------------------------------------


def _prepare(corpus: Path, cache: Path):
    from tunesmith.corpus import prepare

    config = Config()
    config.corpus.sources, config.corpus.workers, config.corpus.cache_dir = [str(corpus)], 1, str(cache)
    config.corpus.val_fraction = 0.0
    return prepare(config.corpus, config.encoding, progress=False)


@pytest.mark.parametrize("name, damage", [
    ("dataset.json", lambda text: text[: len(text) // 2]),  # truncated
    ("vocab.json", lambda text: '{"tokens": 5}'),  # valid JSON, wrong shape
    ("report.json", lambda text: "[]"),
    ("dataset.json", lambda text: json.dumps({**json.loads(text), "songs": [{"tokens": "99 zz"}]})),
    ("song", lambda text: text[:10]),  # one tune's cached reading
    ("song", lambda text: '{"song": {"notes": 3}, "counts": {}}'),
])  # fmt: skip
def test_a_corrupted_cache_heals(name, damage, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "pickup.krn", corpus)
    first = _prepare(corpus, tmp_path / "cache")
    path = next((tmp_path / "cache" / "songs").rglob("*.json")) if name == "song" else first.folder / name
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    if name == "song":  # a damaged reading matters when the dataset is rebuilt
        shutil.rmtree(first.folder)
    capsys.readouterr()
    healed = _prepare(corpus, tmp_path / "cache")
    assert healed.report["cache"] == "miss" and "tunesmith: " in capsys.readouterr().err
    assert [e.tokens for e in healed.examples] == [e.tokens for e in first.examples]
    again = _prepare(corpus, tmp_path / "cache")
    assert again.report["cache"] == "hit" and [e.tokens for e in again.examples] == [e.tokens for e in first.examples]


def test_the_dataset_cache_reports_each_folders_own_paths(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(DATA / "corrupt" / "garbage.xml", tmp_path / name)
        shutil.copy(DATA / "pickup.krn", tmp_path / name)
    a, b = _prepare(tmp_path / "a", tmp_path / "cache"), _prepare(tmp_path / "b", tmp_path / "cache")
    assert a.folder != b.folder and b.report["cache"] == "miss"
    assert [r["source"] for r in b.report["rejections"]] == [str(tmp_path / "b" / "garbage.xml")]


def test_two_concurrent_prepares_share_the_work(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "pickup.krn", corpus)
    env = {**os.environ, "PYTHONPATH": str(SRC), "TUNESMITH_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "tunesmith", "prepare", "--corpus", str(corpus), "--set", "corpus.workers=1",
            "--set", "corpus.val_fraction=0", "--json", "--no-progress"]  # fmt: skip
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    assert sorted(json.loads(out)["cache"] for out, _ in outputs) == ["hit", "miss"]


# --- 7. a resume never duplicates a metrics line --------------------------------------------------


def test_resume_after_a_kill_between_metrics_and_checkpoint_keeps_one_line_per_epoch(tmp_path):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    train(tiny_config(epochs=1), tmp_path / "run", dataset=dataset, progress=False)
    metrics = tmp_path / "run" / "metrics.jsonl"
    line = metrics.read_text(encoding="utf-8").splitlines()[0]
    # epoch 2's line written, then killed before its checkpoint: last.pt still holds epoch 1
    metrics.write_text(line + "\n" + line.replace('"epoch": 1', '"epoch": 2') + "\n", encoding="utf-8")
    train(tiny_config(epochs=3), tmp_path / "run", dataset=dataset, resume=True, progress=False)
    epochs = [json.loads(x)["epoch"] for x in metrics.read_text(encoding="utf-8").splitlines()]
    assert epochs == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the lock is gone


def test_a_resumed_run_is_locked_against_a_second_one(tmp_path, monkeypatch, capsys):
    dataset = synthetic_dataset(tmp_path / "data", songs=24)
    train(tiny_config(epochs=1), tmp_path / "run", dataset=dataset, progress=False)
    from tunesmith.rundir import open_run_folder

    held = open_run_folder(tmp_path / "run")
    try:
        assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 2
        assert "another tunesmith run is writing" in one_line_error(capsys)
    finally:
        held.release()
    assert loop.LAST in {p.name for p in (tmp_path / "run").iterdir()}


def test_the_cli_builds_its_flags_and_help_without_torch():
    """Every command's flags come from its config dataclasses; building them must not import torch
    (seconds on a small machine), so `tunesmith --help` and the commands that need no model answer at once."""
    code = ("import sys; from tunesmith.cli import build_parser; parser = build_parser(); "
            "parser.format_help(); print('torch' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- found by probing the CLI: each a one-line error, exit 2, before any long work -----------------
def _melody_file(tmp_path, tiny_checkpoint, damage) -> Path:
    from tunesmith.generate import Generator

    data = Generator.from_checkpoint(tiny_checkpoint, "cpu").generate(bars=4, seed=1)[0].to_dict()
    damage(data)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.update(tokens=d["tokens"][:3] + [60]), "'tokens'"),
    (lambda d: d.update(tokens=[]), "'tokens'"),
    (lambda d: d.update(tokens=["_"] + d["tokens"]), "starts with '_'"),
    (lambda d: d.update(song=None), "'song'"),
    (lambda d: d.update(params=[]), "'params'"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d["song"].update(steps_per_quarter=0), "steps_per_quarter"),
    (lambda d: d["song"].update(meter="waltz"), "meter"),
    (lambda d: d["song"].update(key="H#"), "unknown key"),
    (lambda d: d["song"].update(bar_starts="0 16"), "bar_starts"),
    (lambda d: d["song"].update(chords=[[0, 16]]), "'song'"),
])  # fmt: skip
def test_a_damaged_melody_file_is_named_not_an_internal_error(damage, words, tmp_path, tiny_checkpoint, capsys):
    path = _melody_file(tmp_path, tiny_checkpoint, damage)
    argv = ["regenerate", str(path), "--bars", "2-3", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    assert words in one_line_error(capsys)


def test_numbers_and_paths_are_checked_before_the_work(tmp_path, tiny_checkpoint, capsys):
    for argv, words in [
        (["evaluate", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "e1"), "--threads", "100000"], "--threads"),
        (["evaluate", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "e2"), "--num", "99999999999"], "--num"),
        (["evaluate", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "e3"), "--seed", "-5"], "got -5"),
        (["critic", str(tiny_checkpoint), "--output", str(tmp_path)], "is a folder"),
        (["critic", str(tiny_checkpoint), "--output", str(tiny_checkpoint / "x.pt")], "is a file"),
        (["generate", "--model", str(tiny_checkpoint), "--device", "mps", "--out", str(tmp_path / "g")], "mps"),
        (["generate", "--model", str(tiny_checkpoint), "--out", ""], "--out is empty"),  # not the default folder
        (["evaluate", "--model", str(tiny_checkpoint), "--out", " "], "--out is empty"),
        (["prepare", "--corpus", str(DATA / "pickup.krn"), "--out", ""], "--out is empty"),
        (["harmonize", str(DATA / "pickup.krn"), "--out", ""], "--out is empty"),  # not "print only"
        (["critic", str(tiny_checkpoint), "--output", ""], "--output is empty"),  # not "into the model file"
    ]:  # fmt: skip
        assert cli.main(argv) == 2, argv
        assert words in one_line_error(capsys), argv


def test_a_soundfont_asked_for_must_exist(tmp_path):
    from tunesmith.export.audio import find_soundfont

    with pytest.raises(TunesmithError, match="no soundfont at"):
        find_soundfont(str(tmp_path / "absent.sf2"))


def test_serve_says_so_when_it_cannot_listen(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
        assert "cannot listen" in one_line_error(capsys)
    assert cli.main(["serve", "--host", "not a host!"]) == 2
    assert "--host" in one_line_error(capsys)


def test_a_binary_preset_is_one_line(tmp_path, capsys):
    preset = tmp_path / "bin.toml"
    preset.write_bytes(bytes(range(256)))
    assert cli.main(["prepare", "--preset", str(preset)]) == 2
    assert "cannot read preset" in one_line_error(capsys)
