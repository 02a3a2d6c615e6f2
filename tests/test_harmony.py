"""The harmoniser: chord facts, reading chord symbols, training, decoding, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.harmony.model import HarmonyConfig, HarmonyModel, default_harmony_path, load_harmony, viterbi
from tunesmith.harmony.spans import cut_spans
from tunesmith.harmony.theory import chord_tones, parse_figure, roman, spell_root
from tunesmith.song import Chord, Note, Song

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "chords.abc"
# The fixture's chords, one per half bar after the pickup (I = G, IV = C, V7 = D7, vi = Em, ii = Am, V = D).
FIXTURE_HALVES = ["G", "G", "C", "D7", "G", "Em", "Am", "D", "G", "G", "C", "D7", "G", "D7", "G", "G"]


@pytest.fixture(scope="module")
def fixture_record():
    from tunesmith.harmony.nottingham import tune_record

    return tune_record(FIXTURE.read_text(encoding="utf-8"), "chords.abc#1")


@pytest.fixture(scope="module")
def fixture_model(fixture_record, tmp_path_factory) -> Path:
    """A harmoniser fitted on the fixture alone, saved as JSON."""
    from tunesmith.harmony.spans import span_features
    from tunesmith.harmony.training import fit, passages_of

    passages = {per: passages_of(fixture_record, per) for per in ("bar", "half")}
    features = {per: [span_features(p, 1.5) for p in passages[per]] for per in passages}
    model = fit(passages, features, HarmonyConfig(min_count=1, l2=1e-4), accent=1.5, betas={"bar": 1.0, "half": 1.0})
    model.default_per = {"4/4": "half"}
    return model.save(tmp_path_factory.mktemp("harmony") / "harmony.json")


def test_chord_figures_fold_to_six_qualities():
    assert parse_figure("G") == (7, "maj")
    assert parse_figure("F#m") == (6, "min")
    assert parse_figure("A7/c+") == (9, "7")  # slash bass ignored
    assert parse_figure("(E7)") == (4, "7")
    assert parse_figure("Bbmaj7") == (10, "maj7")
    assert parse_figure("Gd") == (7, "dim")  # Nottingham writes diminished as "d"
    assert parse_figure("C6") == (0, "maj")
    assert parse_figure("From") is None


def test_roman_numerals_and_spelling_follow_the_key():
    assert [roman(d, q, "major") for d, q in [(0, "maj"), (5, "maj"), (7, "7"), (2, "min"), (9, "min"), (11, "dim")]] == \
        ["I", "IV", "V7", "ii", "vi", "vii°"]  # fmt: skip
    assert [roman(d, q, "minor") for d, q in [(0, "min"), (5, "min"), (7, "maj"), (3, "maj"), (10, "maj")]] == \
        ["i", "iv", "V", "III", "VII"]  # fmt: skip
    assert spell_root("F", "major", 10) == "Eb"  # bVII of F is E flat, not D sharp
    assert spell_root("E", "minor", 6) == "A#"
    assert spell_root("B-", "major", 7) == "F"
    assert chord_tones(7, "7") == {7, 11, 2, 5}


def test_song_keeps_chords_through_its_dict():
    chord = Chord(start=0, steps=16, root=7, quality="maj", roman="I", symbol="G")
    song = Song(notes=[Note(67, 16)], key="G", chords=[chord])
    data = json.loads(json.dumps(song.to_dict()))
    assert data["chords"][0]["symbol"] == "G"
    assert Song.from_dict(data).chords == [chord]
    del data["chords"]
    assert Song.from_dict(data).chords == []


def test_spans_skip_the_pickup_and_split_at_the_half_bar():
    measures = [(0.0, 0.5), (0.5, 4.0), (4.5, 4.0)]
    assert cut_spans(measures, "4/4", "bar") == [(0.5, 4.5, True), (4.5, 8.5, True)]
    assert cut_spans(measures, "4/4", "half")[:2] == [(0.5, 2.5, True), (2.5, 4.5, False)]
    assert cut_spans([(0.0, 3.0)], "6/8", "half") == [(0.0, 1.5, True), (1.5, 3.0, False)]


def test_nottingham_record_holds_chords_and_key(fixture_record):
    from tunesmith.harmony.training import passages_of

    assert fixture_record["keys"] == [[0.0, 7, "major"]]
    assert [c[1] for c in fixture_record["chords"][:4]] == ["G", "C", "D7", "G"]
    (passage,) = passages_of(fixture_record, "half")
    names = {(0, "maj"): "G", (5, "maj"): "C", (7, "7"): "D7", (9, "min"): "Em", (2, "min"): "Am", (7, "maj"): "D"}
    assert [names[g] for g in passage.gold] == FIXTURE_HALVES


def test_viterbi_follows_strong_transitions():
    import numpy as np

    # Two states; emissions mildly prefer state 1 at step 1, but 0 → 0 is far likelier.
    scores = np.log(np.array([[0.9, 0.1], [0.45, 0.55], [0.9, 0.1]]))
    transition = np.log(np.full((2, 3, 3), 1 / 3))
    transition[:, 0, :] = np.log([0.98, 0.01, 0.01])
    assert viterbi(scores, transition, [True, True, True]) == [0, 0, 0]
    assert viterbi(scores * 50, transition, [True, True, True]) == [0, 1, 0]


def test_harmonize_fixture_with_a_model_fitted_on_it(fixture_model):
    from tunesmith.harmony import harmonize, read_melody

    song = read_melody(FIXTURE)
    assert (song.key, song.mode, song.transposition) == ("G", "major", 0)
    assert song.notes[0].pitch == 62  # the pickup D4, back in G major
    chords = harmonize(song, load_harmony(fixture_model), "half")
    assert chords[0].start == song.bar_starts[0]  # nothing on the pickup
    assert chords[0].symbol == "G" and chords[0].roman == "I" and chords[0].root == 7
    assert chords[-1].symbol == "G"
    assert "D7" in {c.symbol for c in chords} and "V7" in {c.roman for c in chords}
    # chords tile the melody from the first downbeat, at most two a bar
    assert all(a.start + a.steps == b.start for a, b in zip(chords, chords[1:], strict=False))
    assert len(chords) <= 2 * len(song.bar_starts)
    per_bar = harmonize(song, load_harmony(fixture_model), "bar")
    assert [c.start for c in per_bar] == song.bar_starts


def test_harmony_file_round_trip(fixture_model):
    model = load_harmony(fixture_model)
    again = HarmonyModel.from_dict(json.loads(fixture_model.read_text()))
    assert again.states == model.states and again.accent == model.accent
    assert "Infinity" not in fixture_model.read_text()  # plain JSON


def test_harmonize_command_prints_and_writes(fixture_model, tmp_path, capsys):
    assert main(["harmonize", str(FIXTURE), "--model", str(fixture_model), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "D7" in out and "V7" in out and "half" in out
    data = json.loads((tmp_path / "chords.json").read_text())
    assert data["song"]["chords"][0]["symbol"] == "G"
    assert (tmp_path / "chords.musicxml").is_file() and (tmp_path / "chords.mid").is_file()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: ["harmonize", str(d / "missing.abc")], "no such file"),
        (lambda d: ["harmonize", str(FIXTURE), "--model", str(FIXTURE)], "not a tunesmith harmoniser"),
        (lambda d: ["harmonize", str(FIXTURE), "--model", str(_write(d / "h.json", '{"format": "other"}'))], "not a tunesmith harmoniser"),
        (lambda d: ["harmonize", str(_write(d / "odd.abc", "X:1\nT:Odd\nM:7/8\nL:1/8\nK:C\nCDEFGAB|]\n"))], "7/8"),
        (lambda d: ["harmonize", str(_write(d / "bad.abc", "this is not music"))], "cannot harmonise"),
        (lambda d: ["harmonize"], "give a melody FILE"),
    ],
)
def test_bad_input_is_one_line_exit_2(make, expected, fixture_model, tmp_path, capsys):
    argv = make(tmp_path)
    if "--model" not in argv and len(argv) > 1:
        argv += ["--model", str(fixture_model)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_harmoniser_chords_the_fixture():
    """The shipped model (trained on Nottingham) starts and ends the G-major fixture on I."""
    from tunesmith.harmony import harmonize, read_melody

    path = default_harmony_path()
    if not path.is_file():
        pytest.skip("models/harmony.json is not built")
    model = load_harmony(path)
    chords = harmonize(read_melody(FIXTURE), model)
    assert chords[0].roman == "I" and chords[-1].roman == "I"
    assert {"IV", "V", "V7"} & {c.roman for c in chords}


def test_nottingham_tune_when_present(tmp_path):
    """A real Nottingham tune parses with its chords (skipped when the shared data is absent)."""
    from tunesmith.harmony.nottingham import default_folder, tune_record
    from tunesmith.harmony.training import passages_of

    waltzes = default_folder() / "waltzes.abc"
    if not waltzes.is_file():
        pytest.skip("../shared/data/nottingham-abc is absent")
    text = waltzes.read_text(encoding="utf-8")
    first = text[text.index("X:") : text.index("X:", text.index("X:") + 2)]
    record = tune_record(first, "waltzes.abc#1")
    (passage, *_) = passages_of(record, "bar")
    assert passage.meter == "3/4" and sum(g is not None for g in passage.gold) >= 8


def test_training_without_the_data_is_one_line_exit_2(tmp_path, capsys):
    argv = ["harmonize", "--train", "--data", str(tmp_path / "absent"), "--model", str(tmp_path / "h.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no Nottingham ABC files" in err and "\n" not in err
    assert not (tmp_path / "h.json").exists()


def test_metrics_and_baselines_on_a_known_passage():
    from tunesmith.harmony.metrics import accuracy, chord_tone_ratio, most_notes_baseline, tonic_baseline
    from tunesmith.harmony.spans import Passage

    # Two 4/4 bars in C major: C E G G (a C chord), then B D F D (a G7 without its root on top).
    notes = [(0.0, 1.0, 0), (1.0, 1.0, 4), (2.0, 1.0, 7), (3.0, 1.0, 7), (4.0, 1.0, 11), (5.0, 1.0, 2), (6.0, 1.0, 5), (7.0, 1.0, 2)]
    passage = Passage("major", "4/4", [(0.0, 4.0, True), (4.0, 8.0, True)], notes, gold=[(0, "maj"), (7, "7")])
    assert tonic_baseline(passage) == [(0, "maj"), (0, "maj")]
    assert most_notes_baseline(passage) == [(0, "maj"), (7, "maj")]  # B D (D) beat F among the triads
    assert accuracy([most_notes_baseline(passage)], [passage.gold]) == {"exact": 0.5, "root": 1.0, "spans": 2}
    assert chord_tone_ratio([passage], [passage.gold]) == 1.0
    assert chord_tone_ratio([passage], [tonic_baseline(passage)]) == 0.5


def test_generated_melody_gets_chords(tiny_checkpoint, fixture_model):
    """What ``generate --chords`` does: harmonise each generated melody in its output key."""
    from tunesmith.generate import generate_melodies
    from tunesmith.harmony import harmonize

    (melody,) = generate_melodies(tiny_checkpoint, device="cpu", num=1, bars=4, key="G", seed=3)
    chords = harmonize(melody.song, load_harmony(fixture_model))
    assert chords and all(c.quality in ("maj", "min", "7", "dim", "maj7", "min7") for c in chords)
    assert chords[0].start == 0 and sum(c.steps for c in chords) == melody.song.total_steps
    melody.song.chords = chords
    assert Song.from_dict(json.loads(json.dumps(melody.song.to_dict()))).chords == chords


def test_harmonize_never_writes_over_a_file(tmp_path, capsys):
    """``--out`` is a folder; a file already there (the input itself, say) is never replaced."""
    tune = tmp_path / "tune.abc"
    text = "X:1\nT:Kept\n% the musician's comment\nM:3/4\nL:1/4\nK:G\nG A B | c2 B | A G F | G3 |]\n"
    tune.write_text(text)
    assert main(["harmonize", str(tune), "--out", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err and tune.read_text() == text
    assert main(["harmonize", str(tune), "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "tune.mid" in written and "tune.json" in written
    assert main(["harmonize", str(tune), "--out", str(tmp_path / "out")]) == 2  # again: the files are there now


def test_training_on_unusable_tunes_keeps_the_old_harmoniser(tmp_path, capsys):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "binary.abc").write_bytes(bytes(range(256)) * 8)
    (data / "empty.abc").write_text("X:1\nT:No notes\nK:C\n")
    model = tmp_path / "h.json"
    model.write_text("kept")
    assert main(["harmonize", "--train", "--data", str(data), "--model", str(model), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "usable tunes" in err and "nothing was saved" in err and "\n" not in err
    assert model.read_text() == "kept"
