"""Generation: determinism, lengths, keys, primers, constraints, the CLI and its bad input."""

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from synthetic_songs import UNTRAINED_METERS, untrained_checkpoint

from tunesmith.cli import main
from tunesmith.errors import TunesmithError
from tunesmith.generate import GenerationConfig, Generator, Melody, TunesmithWarning, default_model_path
from tunesmith.generate.constraints import SCALES

DATA = Path(__file__).parent / "data"

SCHEMES = ("sample", "greedy", "mixed", "top-k", "top-p", "beam")
METERS = UNTRAINED_METERS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny untrained model with the full checkpoint layout (pitches G3..C6)."""
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def generator(checkpoint):
    return Generator.from_checkpoint(checkpoint, device="cpu")


def pitches(melody):
    return [n.pitch for n in melody.song.notes if n.pitch is not None]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_seed_same_tokens_and_well_formed(generator, scheme):
    first = generator.generate(num=3, bars=2, seed=7, scheme=scheme)
    again = generator.generate(num=3, bars=2, seed=7, scheme=scheme)
    assert [m.tokens for m in first] == [m.tokens for m in again]
    for melody in first:
        assert 1 <= len(melody.tokens) <= 32
        assert melody.tokens[0] != "_" and not {"<pad>", "<s>", "</s>"} & set(melody.tokens)
        assert pitches(melody), "a melody holds at least one note"
        assert melody.song.total_steps == len(melody.tokens)
        assert melody.params["ended_by"] == ("length" if len(melody.tokens) == 32 else "end token")
    if scheme != "greedy":
        other = generator.generate(num=3, bars=2, seed=8, scheme=scheme)
        assert [m.tokens for m in other] != [m.tokens for m in first]


def test_every_scheme_gives_the_tokens_of_the_generator_before_the_one_loop(generator):
    """tests/data/generate_golden.json was written by the two separate loops (sample, beam) this
    engine replaced, on this fixture's model: the same seed must still give the same tokens."""
    cases = json.loads((Path(__file__).parent / "data" / "generate_golden.json").read_text())
    assert {c["settings"]["scheme"] for c in cases} == set(SCHEMES)
    for case in cases:
        assert [" ".join(m.tokens) for m in generator.generate(**case["settings"])] == case["tokens"], case["settings"]


@pytest.mark.parametrize("scheme", ["sample", "top-p"])
def test_a_melody_that_ends_itself_ends_on_a_bar_line(generator, scheme):
    melodies = generator.generate(num=32, bars=6, meter="3/4", seed=5, scheme=scheme, temperature=3.0)
    ended = [m for m in melodies if m.params["ended_by"] == "end token"]
    assert ended, "some melodies end by themselves at this temperature"
    assert all(len(m.tokens) % 12 == 0 for m in ended)


def test_length_in_bars_of_the_meter(generator):
    for meter, bar in (("3/4", 12), ("6/8", 12), ("2/4", 8)):
        for melody in generator.generate(num=4, bars=3, meter=meter, seed=1):
            assert melody.song.total_steps <= 3 * bar and melody.song.meter == meter
            assert melody.song.bar_starts[:2] == [0, bar][: len(melody.song.bar_starts[:2])]
    assert all(m.song.total_steps <= 5 for m in generator.generate(num=4, steps=5, seed=1))


def test_transposition_to_every_key_keeps_intervals(generator):
    reference = generator.generate(num=2, bars=2, seed=3, mode="major")
    for tonic, name in enumerate(["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]):
        shift = (tonic + 6) % 12 - 6  # nearest octave to the model's register
        for ref, melody in zip(reference, generator.generate(num=2, bars=2, seed=3, mode="major", key=name)):
            assert pitches(melody) == [p + shift for p in pitches(ref)]
            assert melody.song.key.replace("-", "b") == name and melody.params["transposition"] == shift


def test_scale_and_range_are_honoured_in_the_output_key(generator):
    for melody in generator.generate(num=6, bars=4, seed=2, key="E", mode="minor", scale=True, range="D4-B5"):
        assert all(62 <= p <= 83 and (p - 4) % 12 in SCALES["minor"] for p in pitches(melody))


def test_constraints_that_allow_nothing_are_an_error(generator):
    with pytest.raises(TunesmithError, match="allow no pitch"):
        generator.generate(range="C1-C2")


def test_unknown_primer_pitch_maps_to_the_nearest_with_a_warning(generator):
    with pytest.warns(TunesmithWarning, match="primer pitch 99"):
        melody = generator.generate(primer="67 _ 99 _ r 64", bars=2, seed=1)[0]
    assert melody.tokens[:6] == ["67", "_", "84", "_", "r", "64"]


def test_token_primer_is_in_the_output_key(generator):
    melody = generator.generate(primer="D4 _ _ _ 66 _", key="D", bars=2, seed=1)[0]
    assert melody.tokens[:6] == ["62", "_", "_", "_", "66", "_"]


def test_primer_file_goes_through_the_corpus_reader(generator, tmp_path):
    abc = tmp_path / "primer.abc"
    abc.write_text("X:1\nT:Primer\nM:3/4\nL:1/4\nK:G\nG A B | c2 B | A G F | G3 |]\n")
    melody = generator.generate(primer_file=str(abc), bars=6, seed=1)[0]
    assert melody.song.meter == "3/4" and melody.song.mode == "major"
    # G4 A4 B4 in G major move to the model's C major up 5 semitones (the nearer octave).
    assert melody.tokens[:12] == ["72", "_", "_", "_", "74", "_", "_", "_", "76", "_", "_", "_"]


def test_a_primer_file_that_changes_meter_is_read_in_its_first_and_says_so(generator):
    from tunesmith.generate.command import collect_notices

    with collect_notices() as notices:
        melody = generator.generate(primer_file=str(DATA / "meter_change.abc"), bars=8, seed=1)[0]
    assert melody.song.meter == "6/8"
    assert any("changes meter mid-tune; it is read in 6/8 throughout" in note for note in notices)
    with collect_notices() as quiet:  # a tune in one meter: no such notice
        generator.generate(primer_file=str(DATA / "two_tunes.abc"), bars=8, seed=1)
    assert not any("meter" in note for note in quiet)


@pytest.mark.parametrize("settings, message", [
    ({"temperature": 0.0}, "temperature"),
    ({"bars": 0}, "bars"),
    ({"key": "H"}, "unknown key"),
    ({"mode": "dorian"}, "--mode must be one of major, minor"),
    ({"primer": "67 x 65"}, "malformed primer"),
    ({"primer": "_ 67"}, "malformed primer"),
    ({"meter": "5/4"}, "known: 2/4, 3/4, 4/4, 6/8"),
    ({"bars": 1, "primer": " ".join(["60"] * 16)}, "primer is 16 steps"),
    ({"bars": 2.5}, "--bars must be a whole number"),
    ({"seed": "abc"}, "--seed must be a whole number"),
    ({"seed": 2**64}, "--seed must be in 0..9223372036854775807"),
    ({"seed": -1}, "--seed must be in"),
    ({"temperature": float("nan")}, "--temperature must be a finite number"),
    ({"temperature": float("inf")}, "--temperature must be a finite number"),
    ({"top_p": 1.5, "scheme": "top-p"}, "--top-p must be in (0, 1]"),
    ({"mixed_p": -0.1}, "--mixed-p must be in [0, 1]"),
    ({"beam_size": 100_000}, "--beam-size must be in 1..64"),
    ({"num": 4097}, "--num must be in 1..4096"),
    ({"bars": 1025}, "--bars must be in 1..1024"),
    ({"steps": 10**6}, "--steps must be in 1..49152"),
    ({"scheme": "nucleus"}, "--scheme must be one of"),
    ({"scale": "yes"}, "--scale must be true or false"),
    ({"colour": "red"}, "unknown generation setting 'colour'"),
])  # fmt: skip
def test_bad_requests_are_one_line_errors(generator, settings, message):
    with pytest.raises(TunesmithError, match=re.escape(message)) as info:
        generator.generate(**settings)
    assert "\n" not in str(info.value)


def test_greedy_accepts_any_temperature(generator):
    assert generator.generate(scheme="greedy", temperature=0.0, bars=1)[0].tokens


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(TunesmithError, match="no checkpoint"):
        Generator.from_checkpoint(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": [1, 2]}, foreign)
    with pytest.raises(TunesmithError, match="not a tunesmith checkpoint"):
        Generator.from_checkpoint(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(TunesmithError, match="not a readable checkpoint"):
        Generator.from_checkpoint(text)


def test_cli_writes_a_run_folder_that_reproduces(checkpoint, tmp_path, capsys):
    out = tmp_path / "runs" / "first"
    argv = ["generate", "--model", str(checkpoint), "--num", "2", "--bars", "2", "--key", "F", "--meter", "3/4",
            "--seed", "5", "--formats", "mid,json,png", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"melody-0{i}.{s}" for i in (1, 2) for s in ("json", "mid", "png")]
    assert "melody-02" in capsys.readouterr().out
    stored = Melody.load(out / "melody-02.json")
    params = stored.params
    assert params["seed"] == 5 and params["export"]["bpm"] == 100.0 and params["meter"] == "3/4"
    fields = {k: params[k] for k in GenerationConfig.__dataclass_fields__}
    again = Generator.from_checkpoint(params["model"], "cpu").generate(GenerationConfig(**fields))
    assert again[params["index"]].tokens == stored.tokens


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "0"], "temperature"),
    (["--temperature", "nan"], "--temperature must be a finite number"),
    (["--seed", str(2**64)], "--seed must be in"),
    (["--beam-size", "100000"], "--beam-size must be in 1..64"),
    (["--bpm", "inf"], "bpm"),
    (["--bpm", "nan"], "bpm"),
    (["--bars", "0"], "bars"),
    (["--key", "X#"], "unknown key"),
    (["--primer", "60 y"], "malformed primer"),
    (["--formats", "mp3"], "unknown format"),
    (["--program", "0"], "program"),
])  # fmt: skip
def test_cli_bad_input_exits_2_and_writes_nothing(checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "parent" / "run"
    assert main(["generate", "--model", str(checkpoint), "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "parent").exists()


def test_cli_missing_model_and_unwritable_folder(checkpoint, tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "none.pt"), "--out", str(tmp_path / "a")]) == 2
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["generate", "--model", str(checkpoint), "--bars", "1", "--out", str(blocker / "run")]) == 2
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["generate", "--model", str(checkpoint), "--bars", "1", "--out", str(taken)]) == 2
    errors = capsys.readouterr().err
    assert "no checkpoint" in errors and "cannot write" in errors and "not empty" in errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "taken"]
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


def test_missing_fluidsynth_still_writes_the_rest(checkpoint, tmp_path, capsys, monkeypatch):
    import tunesmith.export.audio as audio

    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    out = tmp_path / "run"
    assert main(["generate", "--model", str(checkpoint), "--bars", "1", "--num", "2", "--formats", "mid,wav,json",
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".json", ".mid", ".mid"]
    assert "apt-get install fluidsynth fluid-soundfont-gm" in capsys.readouterr().out


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")
def test_shipped_model_stays_in_the_key_scale():
    generator = Generator.from_checkpoint(default_model_path(), "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TunesmithWarning)
        melodies = generator.generate(num=4, seed=0)
    for melody in melodies:
        notes = pitches(melody)
        in_scale = sum(p % 12 in SCALES["major"] for p in notes) / len(notes)
        assert in_scale >= 0.9, (in_scale, json.dumps(melody.tokens))


def broken_copy(generator, value):
    """The same generator with an output bias of ``value`` (NaN: a broken checkpoint)."""
    import copy

    model = copy.deepcopy(generator.model)
    with torch.no_grad():
        model.head.bias.fill_(value)
    return Generator(model, generator.payload, generator.device, generator.source)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_nan_scores_from_a_broken_model_fail_clearly(generator, scheme):
    with pytest.raises(TunesmithError, match="NaN or infinite scores"):
        broken_copy(generator, float("nan")).generate(bars=1, scheme=scheme, seed=1)


class Tilt:
    """A test control: a huge bias towards pitch 60, which the range forbids; counts its calls."""

    def __init__(self, vocab, value):
        self.bias_row = torch.zeros(len(vocab))
        self.bias_row[vocab.index["60"]] = value
        self.calls = {"start": 0, "advance": 0, "reorder": 0}

    def start(self, rows, prefix):
        self.calls["start"] += 1
        self.rows = rows

    def allowed(self, ctx):
        return None

    def bias(self, ctx):
        assert ctx.rows == self.rows and ctx.previous.shape == (self.rows,) and 0 <= ctx.position < 16
        return self.bias_row

    def advance(self, chosen):
        assert chosen.shape == (self.rows,)
        self.calls["advance"] += 1

    def reorder(self, index):
        self.calls["reorder"] += 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_masked_token_is_never_emitted_whatever_its_score(generator, scheme):
    tilt = Tilt(generator.vocab, 1e30)
    for melody in generator.generate(num=4, bars=2, seed=3, scheme=scheme, range="D4-C5", controls=[tilt]):
        assert 60 not in pitches(melody) and all(62 <= p <= 72 for p in pitches(melody))
    assert tilt.calls["start"] == 1 and tilt.calls["advance"] >= 1
    assert (tilt.calls["reorder"] >= 1) == (scheme == "beam")


def test_a_control_bias_steers_and_an_infinite_one_is_refused(generator):
    steered = generator.generate(num=2, bars=1, seed=3, controls=[Tilt(generator.vocab, 50.0)])
    assert all(set(pitches(m)) == {60} for m in steered)
    with pytest.raises(TunesmithError, match="bias is not finite"):
        generator.generate(bars=1, seed=3, controls=[Tilt(generator.vocab, float("inf"))])


def test_full_length_never_ends_early_and_large_requests_run_in_chunks(generator, monkeypatch):
    import tunesmith.generate.generator as module

    whole = generator.generate(num=6, bars=3, seed=4, temperature=3.0, full_length=True)
    assert all(len(m.tokens) == 48 and m.params["ended_by"] == "length" for m in whole)
    monkeypatch.setattr(module, "CHUNK_ROWS", 4)
    chunked = generator.generate(num=6, bars=3, seed=4, temperature=3.0, full_length=True)
    assert [m.params["index"] for m in chunked] == list(range(6))
    assert all(len(m.tokens) == 48 for m in chunked)  # (chunks draw their own random numbers: not `whole`)
    assert [m.tokens for m in chunked] == [m.tokens for m in generator.generate(num=6, bars=3, seed=4, temperature=3.0,
                                                                                 full_length=True)]  # fmt: skip
    beams = generator.generate(num=3, bars=1, seed=4, scheme="beam", beam_size=2)
    assert len(beams) == 3


def test_wav_alone_without_fluidsynth_is_an_error_before_any_work(checkpoint, tmp_path, capsys, monkeypatch):
    import tunesmith.export.audio as audio

    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    out = tmp_path / "parent" / "run"
    assert main(["generate", "--model", str(checkpoint), "--bars", "1", "--formats", "wav", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "apt-get install fluidsynth" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "parent").exists()


def test_cli_flags_are_the_config_fields(checkpoint):
    from tunesmith.cli import build_parser
    from tunesmith.generate.command import _configs

    parser = build_parser()
    args = parser.parse_args(["generate", "--model", str(checkpoint), "--top-p", "0.5", "--scale", "--full-length"])
    generation, export = _configs(args)
    assert generation == GenerationConfig(top_p=0.5, scale=True, full_length=True) and export.bpm == 100.0
    text = parser._subparsers._group_actions[0].choices["generate"].format_help()
    assert "probability mass kept by --scheme top-p (default 0.9)" in text
