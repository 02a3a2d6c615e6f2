"""Generation with form: --form, the corpus's default form, --bars fitting, compliance, bad input."""

from __future__ import annotations

import json

import pytest

from synthetic_songs import synthetic_dataset, tiny_config
from tunesmith.checkpoint import Checkpoint
from tunesmith.cli import main
from tunesmith.errors import TunesmithError
from tunesmith.form import compliance, label_phrases, parse_form
from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.generate.layout import draw_fitting, fit_bars


@pytest.fixture(scope="module")
def form_checkpoint(tmp_path_factory):
    """A tiny form-aware model trained on the synthetic corpus (its extra holds the corpus forms)."""
    from tunesmith.training.loop import train

    folder = tmp_path_factory.mktemp("form_run")
    config = tiny_config(epochs=2)
    config.model.form_inputs = True
    train(config, folder / "run", dataset=synthetic_dataset(folder / "data"), progress=False)
    return folder / "run" / "best.pt"


def test_a_requested_aaba_is_honoured(form_checkpoint):
    generator = Generator.from_checkpoint(form_checkpoint, "cpu")
    melodies = generator.generate(GenerationConfig(form="AABA", bars=8, num=6, seed=3, max_copy=0))
    for melody in melodies:
        assert melody.params["form"] == "A2 A2 B2 A2" and melody.params["ended_by"] == "form"
        assert melody.song.phrase_starts == [0, 32, 64, 96] and melody.song.total_steps == 128
        assert compliance(melody.song, "AABA").ok, compliance(melody.song, "AABA").problems
        assert label_phrases(melody.song) == ["A", "A", "B", "A"]


def test_a_variant_keeps_the_body(form_checkpoint):
    generator = Generator.from_checkpoint(form_checkpoint, "cpu")
    melodies = generator.generate(GenerationConfig(form="A4 A'4", num=4, seed=0, meter="3/4", max_copy=0))
    for melody in melodies:
        assert melody.params["form"] == "A4 A'4" and melody.bars == 8
        assert compliance(melody.song, "A A'").ok


def test_default_form_is_drawn_from_the_corpus(form_checkpoint):
    checkpoint = Checkpoint.load(form_checkpoint)
    forms = checkpoint.extra["forms"]
    generator = Generator.from_checkpoint(form_checkpoint, "cpu")
    melody = generator.generate(GenerationConfig(seed=1, meter="3/4", max_copy=0))[0]
    assert melody.params["form"] in forms["3/4 major"] and melody.params["form_source"] == "corpus"
    bars = sum(p.bars for p in parse_form(melody.params["form"]))
    assert melody.bars == bars and melody.params["ended_by"] == "form"
    # --bars picks a form that lasts that long; --form none composes without one
    assert generator.generate(GenerationConfig(seed=1, bars=12, max_copy=0))[0].bars == 12
    free = generator.generate(GenerationConfig(seed=1, bars=3, form="none", max_copy=0))[0]
    assert free.params["form"] is None and free.song.phrase_starts == []


def test_several_melodies_each_draw_their_own_form(form_checkpoint):
    generator = Generator.from_checkpoint(form_checkpoint, "cpu")
    config = GenerationConfig(num=6, seed=40, meter="3/4", max_copy=0)
    melodies = generator.generate(config)
    # melody i is the one melody of seed 40 + i, its own drawn form with it
    assert [m.params["seed"] for m in melodies] == list(range(40, 46))
    assert [m.params["index"] for m in melodies] == list(range(6)) and melodies[5].song.title.startswith("Melody 6 ")
    alone = [generator.generate(GenerationConfig(num=1, seed=40 + i, meter="3/4", max_copy=0))[0] for i in range(6)]
    assert [m.tokens for m in melodies] == [m.tokens for m in alone]
    assert [m.params["form"] for m in melodies] == [m.params["form"] for m in alone]
    assert len({m.params["form"] for m in melodies}) > 1  # not one form for all


def test_fit_bars_and_draw_fitting():
    assert [p.bars for p in fit_bars(parse_form("AABA"), 8, None, "4/4", "major")] == [2, 2, 2, 2]
    assert [p.bars for p in fit_bars(parse_form("AABA"), 9, None, "4/4", "major")] == [2, 2, 3, 2]
    assert [p.bars for p in fit_bars(parse_form("AABA"), 10, None, "4/4", "major")] == [2, 2, 4, 2]
    assert [p.bars for p in fit_bars(parse_form("AABB"), 10, None, "4/4", "major")] == [2, 2, 3, 3]
    with pytest.raises(TunesmithError, match="cannot split 9 bars"):
        fit_bars(parse_form("AABB"), 9, None, "4/4", "major")
    with pytest.raises(TunesmithError, match="lasts 16 bars but --bars is 8"):
        fit_bars(parse_form("A4 A4 B4 A4"), 8, None, "4/4", "major")
    import random

    from collections import Counter

    forms = {("4/4", "major"): Counter({"A2 B2": 3, "A4 A4 B4 A4": 1})}
    assert [p.bars for p in draw_fitting(forms, "4/4", "major", 16, random.Random(0))] == [4, 4, 4, 4]
    assert [p.bars for p in draw_fitting(forms, "4/4", "major", 8, random.Random(0))] == [4, 4]  # A2 B2 scaled
    assert sum(p.bars for p in draw_fitting(forms, "4/4", "major", 7, random.Random(0))) == 7


@pytest.mark.parametrize("form, message", [
    ("", "empty form"),
    ("A9Z", "bad form"),
    ("AABA", "more than --bars 3"),
])  # fmt: skip
def test_cli_bad_form_exits_2_with_one_line(form_checkpoint, tmp_path, capsys, form, message):
    out = tmp_path / "run"
    assert main(["generate", "--model", str(form_checkpoint), "--form", form, "--bars", "3", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_cli_shows_the_form(form_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide table: the form is not wrapped
    out = tmp_path / "run"
    assert main(["generate", "--model", str(form_checkpoint), "--form", "A A' B A", "--seed", "2",
                 "--formats", "json", "--out", str(out)]) == 0  # fmt: skip
    assert "A2 A'2 B2 A2" in capsys.readouterr().out
    saved = json.loads((out / "melody-01.json").read_text())
    assert saved["params"]["form"] == "A2 A'2 B2 A2" and saved["song"]["phrase_starts"] == [0, 32, 64, 96]


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")
def test_shipped_model_honours_aaba_and_draws_a_corpus_form():
    generator = Generator.from_checkpoint(None, "cpu")
    melodies = generator.generate(GenerationConfig(form="AABA", bars=8, num=8, seed=0, max_copy=0))
    assert sum(compliance(m.song, "AABA").ok for m in melodies) >= 7
    if generator.form_aware:
        melody = generator.generate(GenerationConfig(seed=0, max_copy=0))[0]
        assert melody.params["form_source"] == "corpus" and melody.params["ended_by"] == "form"
