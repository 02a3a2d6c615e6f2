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


def test_the_ending_penalises_other_degrees_in_the_last_beat():
    """FormControl's ending rule, on a hand-made 2-bar 4/4 form: in the last beat (4 steps) rests
    and pitches off the final degrees are penalised, and at its first step so is holding them."""
    import torch

    from tunesmith.encoding import Vocabulary
    from tunesmith.generate.controls import StepContext
    from tunesmith.generate.form import ENDING_BIAS, FormControl, final_pitch_ids
    from tunesmith.form.labels import FormPhrase
    from tunesmith.generate.layout import PlannedForm

    vocab = Vocabulary.build([[str(p) for p in range(60, 73)] + ["r", "_"]])
    form = PlannedForm([FormPhrase("A", 0, 1), FormPhrase("B", 0, 1)], [0, 16], 32, 16, "requested")
    finals = final_pitch_ids(vocab, "major")
    assert sorted(vocab.tokens[i] for i in finals) == ["60", "64", "72"]  # C and E: degrees 1 and 3
    control = FormControl(form, vocab, tonic_ids=[vocab.index["60"], vocab.index["72"]], final_ids=finals, final_steps=4)
    assert [t for t, f in enumerate(control.final) if f] == [28, 29, 30, 31] and control.final[28] == 2
    held_g, held_e = vocab.ids(["67"] + ["_"] * 27), vocab.ids(["64"] + ["_"] * 27)
    control.start(2, [])
    for step in range(28):
        control.advance(torch.tensor([held_g[step], held_e[step]]))
    ctx = StepContext(28, 0, 1, False, 32, 2, torch.device("cpu"), vocab, torch.zeros(2, dtype=torch.long))
    bias = control.bias(ctx)
    hold, rest, g, c = vocab.index["_"], vocab.index["r"], vocab.index["67"], vocab.index["60"]
    assert bias[0, hold] == -ENDING_BIAS and bias[1, hold] == 0  # G may not be held into the last beat, E may
    assert (bias[:, rest] == -ENDING_BIAS).all() and (bias[:, g] == -ENDING_BIAS).all() and (bias[:, c] > 0).all()
    control.advance(torch.tensor([c, hold]))
    ctx.step = 29
    later = control.bias(ctx)
    assert (later[:, g] == -ENDING_BIAS).all() and (later[:, hold] >= 0).all()  # holding is free again
    assert not any(FormControl(form, vocab, final_steps=4).final)  # no final degrees: no ending rule


def test_default_melodies_end_on_a_degree_songs_end_on():
    """What a listener hears: a default melody ends on the tonic or (in major) its third, never on
    the 5th, 2nd or 4th, in every meter and mode; regenerating its last bars keeps that."""
    from tunesmith.evaluate.structure import final_degree
    from tunesmith.meter import bar_spans

    generator = Generator.from_checkpoint(None, "cpu")
    if not generator.form_aware:
        pytest.skip("the shipped model draws no form")
    allowed = {"major": {"1", "3"}, "minor": {"1"}}
    melodies = []
    for seed, (meter, mode) in enumerate([("4/4", "major"), ("3/4", "major"), ("6/8", "major"), ("2/4", "minor"),
                                          ("3/4", "minor"), ("6/8", "minor")] * 3):  # fmt: skip
        melody = generator.generate(GenerationConfig(meter=meter, mode=mode, seed=seed))[0]
        assert final_degree(melody.song) in allowed[mode], (meter, mode, seed, melody.tokens[-16:])
        melodies.append(melody)
    for melody in melodies[:3]:
        last = max(bar_spans(melody.song))
        for new in generator.regenerate(melody, (last - 1, last), num=2, seed=1):
            assert final_degree(new.song) in allowed[melody.song.mode]


def test_a_new_letter_may_not_copy_an_earlier_phrase():
    """FormControl's contrast, on a hand-made "A B" in 4/4: a B striking A's notes at A's onsets
    has A's next onset penalised (never a hold: the rhythm may agree); a B of its own has not."""
    import torch

    from tunesmith.encoding import Vocabulary
    from tunesmith.form.labels import FormPhrase
    from tunesmith.generate.controls import StepContext
    from tunesmith.generate.form import CONTRAST_BIAS, FormControl
    from tunesmith.generate.layout import PlannedForm

    vocab = Vocabulary.build([[str(p) for p in range(60, 73)] + ["r", "_"]])
    form = PlannedForm([FormPhrase("A", 0, 1), FormPhrase("B", 0, 1)], [0, 16], 32, 16, "requested")
    control = FormControl(form, vocab)
    assert control.rivals[16] == [0] and control.rivals[3] == [] and control.rivals[31] == [15]
    a = vocab.ids("60 _ 62 _ 64 _ 65 _ 67 _ _ _ 65 _ 64 _".split())
    copy, own = vocab.ids("60 _ 62 _".split()), vocab.ids("72 _ 71 _".split())
    control.start(2, [])
    for step in range(20):
        control.advance(torch.tensor([a[step], a[step]] if step < 16 else [copy[step - 16], own[step - 16]]))
    ctx = StepContext(20, 4, 1, False, 32, 2, torch.device("cpu"), vocab, torch.zeros(2, dtype=torch.long))
    bias = control.bias(ctx)
    e = vocab.index["64"]
    assert bias[0, e] == -CONTRAST_BIAS and bias[1, e] == 0  # the copy may not go on; the other B may play E
    assert (bias[0] < 0).sum() == 1  # only that onset: holds, rests and other notes are free
    control.advance(torch.tensor([vocab.index["_"], vocab.index["_"]]))
    ctx.step = 21  # A holds here: nothing to avoid
    assert control.bias(ctx) is None
