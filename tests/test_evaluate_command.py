"""The whole evaluation on the tiny checkpoint and its synthetic corpus, and the CLI's errors."""

import json
import re

import pytest

from synthetic_songs import synthetic_dataset
from tunesmith.cli import main
from tunesmith.evaluate import EvaluateConfig, evaluate, write_report
from tunesmith.evaluate.classifier import ClassifierConfig
from tunesmith.evaluate.dryout import DryoutConfig


@pytest.fixture(scope="module")
def results(tiny_checkpoint, tmp_path_factory):
    dataset = synthetic_dataset(tmp_path_factory.mktemp("evaluate_data"))
    config = EvaluateConfig(num=12, bars=4, progress=False, dryout=DryoutConfig(num=4, bars=8),
                            classifier=ClassifierConfig(trees=20, folds=3))  # fmt: skip
    return evaluate(tiny_checkpoint, config, dataset=dataset)


def test_evaluation_reports_every_section(results):
    assert results["counts"]["generated"] == 12 and results["counts"]["evaluated"] == 8
    model, ngram = results["prediction"]["model"], results["prediction"]["ngram"]
    # The same likelihood definitions score both, over the same targets.
    assert model["steps"] == ngram["steps"] and ngram["order"] >= 1
    assert 0.0 <= results["statistics"]["summary"]["overlap"] <= 1.0
    assert set(results["statistics"]["features"]) == set(results["features"]["real"])
    assert len(results["originality"]["generated"]["longest_notes"]) == 12
    assert 0.0 <= results["classifier"]["accuracy"] <= 1.0
    assert results["classifier"]["structure"] and not results["classifier_basic"]["structure"]
    real, generated = results["structure"]["real"], results["structure"]["generated"]
    assert real["songs"] == 8 and generated["songs"] == 12
    assert 0.0 <= generated["repetition"] <= 1.0 and 0.0 <= real["tonic_endings"] <= 1.0
    assert real["tonic_endings"] == 1.0  # every synthetic song ends on its tonic
    assert generated["compliance"] is None  # no form was requested
    # </s> is forbidden in the dry-out run, so every long melody reaches all 8 bars.
    assert results["dryout"]["reached"] == [4] * 8


def test_report_files(results, tmp_path):
    report = write_report(results, tmp_path / "out")
    text = report.read_text(encoding="utf-8")
    for heading in ("## Prediction", "## Generated vs real", "## Structure", "## Originality", "## Passes as human?",
                    "## Dry-out"):  # fmt: skip
        assert heading in text
    assert "| ends on the tonic | 100.0% |" in text and "Without the structure features" in text
    assert "| repetition |" in text and "| tonic ending |" in text  # structure features in the Yang & Lerch table
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["prediction"]["ngram"]["order"] == results["prediction"]["ngram"]["order"]
    assert "curves" not in metrics["statistics"]["features"]["pitch_range"]
    assert metrics["structure"]["real"]["repetition"] == pytest.approx(results["structure"]["real"]["repetition"])
    assert "examples" not in metrics and "final_note_length" in metrics["statistics"]["features"]
    for figure in ("features.png", "histograms.png", "overlap.png", "originality.png", "dryout.png", "selfsim.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 1000
    assert len(json.loads((tmp_path / "out" / "generated.json").read_text(encoding="utf-8"))) == 12


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_cli_rejects_a_bad_form(tiny_checkpoint, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--form", "ABX?", "--out", str(tmp_path / "o")]) == 2
    assert "bad form" in capsys.readouterr().err


def test_requested_forms_are_read_from_the_melodies(tiny_checkpoint):
    from dataclasses import fields

    from tunesmith.errors import TunesmithError
    from tunesmith.evaluate.pipeline import generate_melody_set, requested_form
    from tunesmith.form import FormPhrase
    from tunesmith.generate import GenerationConfig, Generator, Melody
    from tunesmith.song import Note, Song

    assert requested_form(Melody([], Song([]), {"form": "AABA"})) == "AABA"
    assert requested_form(Melody([], Song([]), {"form": [FormPhrase("A", 0, 4), FormPhrase("A", 1, 4)]})) == "A4 A'4"
    assert requested_form(Melody([], Song([]), {})) is None
    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    real = [Song([Note(60, 16)] * 8, meter="4/4", bar_starts=[0])]
    if "form" in {f.name for f in fields(GenerationConfig)}:  # the form-aware generator records its form
        melodies = generate_melody_set(generator, real, num=2, bars=0, seed=0, progress=False, form="AABA")
        # the form is recorded with its phrase lengths ("A2 A2 B2 A2"); the letters are the request's
        assert [re.sub(r"[\s\d]", "", requested_form(m)) for m in melodies] == ["AABA", "AABA"]
    else:
        with pytest.raises(TunesmithError, match="takes no form"):
            generate_melody_set(generator, real, num=2, bars=0, seed=0, progress=False, form="AABA")


def test_cli_rejects_too_few_melodies(tiny_checkpoint, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--num", "1", "--out", str(tmp_path)]) == 2
    assert "--num must be at least 2" in capsys.readouterr().err


def test_generated_set_follows_the_real_modes_and_meters():
    from tunesmith.evaluate.pipeline import _allocate
    from tunesmith.song import Song

    real = [Song([], meter="3/4")] * 6 + [Song([], meter="6/8", mode="minor")] * 3 + [Song([], meter="5/4")]
    plan = _allocate(real, 10, ["<unk>", "3/4", "6/8"])  # 5/4 is a meter the model never saw
    assert plan == [("major", "3/4", 7), ("minor", "6/8", 3)]
    assert _allocate([Song([], meter="7/8")], 4, ["<unk>", "2/4"]) == [("major", "2/4", 4)]


def test_generated_set_matches_the_real_lengths(tiny_checkpoint):
    from tunesmith.evaluate.pipeline import generate_set
    from tunesmith.generate import Generator
    from tunesmith.song import Note, Song

    real = [Song([Note(60, 16)] * bars, meter="4/4", bar_starts=[0]) for bars in (3, 5)]
    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    songs = generate_set(generator, real, num=8, bars=0, seed=0, progress=False)
    assert len(songs) == 8
    assert all(song.total_steps <= 5 * 16 for song in songs)
    fixed = generate_set(generator, real, num=4, bars=1, seed=0, progress=False)
    assert all(song.total_steps <= 16 for song in fixed)


def test_evaluation_halves_are_fixed_and_keep_title_groups_together():
    from types import SimpleNamespace

    from tunesmith.errors import TunesmithError
    from tunesmith.evaluate.pipeline import evaluation_half, select_half

    examples = [SimpleNamespace(group=f"song {i // 2}") for i in range(200)]  # two versions of each title
    dev, test = select_half(examples, "dev"), select_half(examples, "test")
    assert len(dev) + len(test) == 200 and 60 < len(dev) < 140  # a split, roughly in halves
    assert not {e.group for e in dev} & {e.group for e in test}  # versions of one song never straddle it
    assert select_half(examples, "all") == examples
    assert evaluation_half("song 7") == evaluation_half("song 7") in ("dev", "test")  # stable, no randomness
    with pytest.raises(TunesmithError, match="half must be one of"):
        select_half(examples, "train")


def test_calibration_songs_are_a_fixed_fifth_of_whole_title_groups():
    """``--half calib``: settings are calibrated on training songs, never on a validation song."""
    from types import SimpleNamespace

    from tunesmith.evaluate.pipeline import calibration_group, select_half

    examples = [SimpleNamespace(group=f"tune {i // 2}") for i in range(1000)]
    calib = select_half(examples, "calib")
    assert 120 < len(calib) < 280  # about a fifth
    groups = {e.group for e in calib}
    assert all((e in calib) == (e.group in groups) for e in examples)  # whole title groups only
    assert select_half(examples, "calib") == calib and calibration_group("tune 3") == calibration_group("tune 3")
    # not the dev half again: the two selections are independent hashes
    assert 0.2 < len(select_half(calib, "dev")) / len(calib) < 0.8


def test_calibration_evaluation_reads_the_training_split(tiny_checkpoint):
    from tunesmith.checkpoint import Checkpoint
    from tunesmith.errors import TunesmithError
    from tunesmith.evaluate.pipeline import EvaluateConfig, _load_sets

    payload = Checkpoint.load(tiny_checkpoint).to_dict()
    train, _, held, described = _load_sets(payload, EvaluateConfig(half="calib", progress=False))
    assert described.startswith("calibration songs") and 0 < len(held) < len(train) / 3
    assert {id(e) for e in held} <= {id(e) for e in train}
    with pytest.raises(TunesmithError, match="takes no --corpus"):
        _load_sets(payload, EvaluateConfig(half="calib", corpus=["essen/erk"], progress=False))


def test_calibration_songs_leave_out_training_only_songs(tiny_checkpoint, tmp_path):
    """A model trained with ``corpus.train_sources`` calibrates on the songs of its sources: the style validated on."""
    from synthetic_songs import synthetic_dataset
    from tunesmith.checkpoint import Checkpoint
    from tunesmith.evaluate.pipeline import EvaluateConfig, _load_sets, select_half

    dataset = synthetic_dataset(tmp_path / "data", songs=300)
    for i, example in enumerate(dataset.split("train")):
        example.extra = i % 2 == 0
    payload = Checkpoint.load(tiny_checkpoint).to_dict()
    train, _, held, _ = _load_sets(payload, EvaluateConfig(half="calib", progress=False), dataset=dataset)
    own = [e for e in train if not e.extra]
    assert held and held == select_half(own, "calib") and not any(e.extra for e in held)
    assert len(select_half(train, "calib")) > len(held)


def test_each_generated_melody_is_its_own_request(tiny_checkpoint):
    """One melody per request, each with its own seed: what `tunesmith generate` gives that seed alone."""
    from tunesmith.evaluate.pipeline import SEED_STRIDE, generate_melody_set
    from tunesmith.generate import GenerationConfig, Generator
    from tunesmith.song import Note, Song

    real = [Song([Note(60, 16)] * bars, meter="4/4", bar_starts=[0]) for bars in (3, 5, 4)]
    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    melodies = generate_melody_set(generator, real, num=3, bars=2, seed=1, progress=False, settings={"temperature": 0.9})
    assert [m.params["seed"] for m in melodies] == [SEED_STRIDE, SEED_STRIDE + 1, SEED_STRIDE + 2]
    assert all(m.params["temperature"] == 0.9 for m in melodies)
    alone = generator.generate(GenerationConfig(num=1, bars=2, mode="major", meter="4/4", seed=SEED_STRIDE + 1,
                                                temperature=0.9))[0]  # fmt: skip
    assert alone.tokens == melodies[1].tokens
