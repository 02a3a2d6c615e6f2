"""Pickups: a melody begins with an upbeat as most folk songs do, and every phrase with it.

77% of the erk training songs begin with a pickup, and 79% of their inner phrases begin with
the same upbeat (the pickup's length before a bar line). Generation draws a pickup and the last
bar with the form from the corpus's songs (``extra["pickups"]``), or takes ``--pickup``.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tunesmith.cli import main
from tunesmith.errors import TunesmithError
from tunesmith.form import compliance, parse_form
from tunesmith.form.inputs import corpus_pickups, pickups_distribution, song_ends
from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.generate.layout import draw_ends, lay_out, legacy_lay_out, melody_form
from tunesmith.song import Note, Song


def song(meter: str, pickup: int, lengths: list[int]) -> Song:
    return Song([Note(60, n) for n in lengths], meter=meter, bar_starts=[pickup] if pickup else [0])


def test_a_songs_pickup_and_last_bar_are_counted_per_meter_and_mode():
    upbeat = song("4/4", 4, [4, 16, 16, 8])  # a quarter upbeat, two bars, a last bar of a half note
    plain = song("3/4", 0, [12, 12, 12])
    assert song_ends(upbeat) == (4, 8) and song_ends(plain) == (0, 12)
    counted = corpus_pickups([upbeat, upbeat, plain])
    assert counted == {"3/4 major": {"0 12": 1}, "4/4 major": {"4 8": 2}}
    assert pickups_distribution(counted)[("4/4", "major")] == Counter({(4, 8): 2})


def test_phrases_begin_with_the_upbeat_and_the_last_bar_is_what_the_pickup_leaves():
    form = lay_out(parse_form("A2 B2 C2 D2"), 16, 4, "requested")
    assert form.starts == [0, 32, 64, 96]  # each 4 steps before its bar line (bar lines at 4, 20, 36…)
    assert form.total_steps == 128 and form.pickup == 4  # 4 + 7 full bars + a last bar of 12
    drawn = lay_out(parse_form("A2 B2 C2 D2"), 16, 4, "corpus", last=8)  # a last bar of a half note
    assert drawn.total_steps == 124 and drawn.starts == form.starts
    # a last phrase restating an earlier one exactly keeps its length, so it can be the same
    assert lay_out(parse_form("A2 A2 B2 A2"), 16, 4, "corpus", last=8).total_steps == 128
    assert lay_out(parse_form("A2 B2"), 12, 0, "requested").starts == [0, 24]  # no pickup: bar lines
    with pytest.raises(TunesmithError, match="does not fit a bar"):
        lay_out(parse_form("A2 B2"), 12, 12, "requested")


def test_the_cadence_begins_at_the_phrases_last_bar_line_as_the_compliance_check_reads_it():
    """Restatement copies the cadence and leaves a variant's free from the last bar line inside
    the phrase: with an upbeat that is the upbeat's length after the phrase's last whole bar, and
    in a shortened last phrase earlier still (a variant's body must be followed up to there)."""
    from tunesmith.form.labels import _last_bar_line, song_phrases

    form = lay_out(parse_form("A2 B2 A2 B'2"), 12, 2, "corpus", last=8)  # 6/8, an eighth upbeat
    assert [form.cadence_from(i) for i in range(4)] == [14, 38, 62, 86]  # bar lines at 2, 14, 26…
    assert form.total_steps == 94  # the last phrase is 22 steps; its last bar line is still at 86
    assert lay_out(parse_form("A2 B2"), 12, 0, "requested").cadence_from(1) == 36  # no upbeat: the last bar
    generator = Generator.from_checkpoint(None, "cpu")
    if generator.form_aware:
        melody = generator.generate(GenerationConfig(form="A2 B2 A2 B'2", meter="6/8", pickup=0.5, seed=8))[0]
        laid = melody_form(melody.params["form"], "requested", melody.song.phrase_starts, len(melody.tokens), 12, 2)
        phrases = song_phrases(melody.song)
        assert [laid.cadence_from(i) for i in range(4)] == [_last_bar_line(melody.song, p) for p in phrases]


def test_a_melody_keeps_its_layout_old_and_new():
    phrases = parse_form("A2 B2 A2 B2")
    new = lay_out(phrases, 12, 4, "corpus", last=8)
    old = legacy_lay_out(phrases, 12, 4, "corpus")  # the first phrase held the pickup
    assert old.starts == [0, 28, 52, 76] and old.total_steps == 100
    for form in (new, old):
        again = melody_form("A2 B2 A2 B2", "corpus", form.starts, form.total_steps, 12, 4)
        assert again.starts == form.starts and again.total_steps == form.total_steps
    with pytest.raises(TunesmithError, match="do not match its form"):
        melody_form("A2 B2 A2 B2", "corpus", [0, 20, 48, 72], new.total_steps, 12, 4)


def test_pickups_are_drawn_from_the_corpus_counts():
    pickups = {("6/8", "major"): Counter({(2, 10): 3, (0, 12): 1, (14, 4): 5})}  # (14, 4) cannot be: ignored
    drawn = Counter(draw_ends(pickups, "6/8", "minor", 12, random.Random(seed)) for seed in range(400))
    assert set(drawn) == {(2, 10), (0, 12)} and drawn[(2, 10)] > 2 * drawn[(0, 12)]  # any mode when minor has none
    assert draw_ends(None, "6/8", "major", 12, random.Random(0)) == (0, None)


@pytest.mark.parametrize("args, message", [
    (["--pickup", "0.3"], "not a whole number of steps"),
    (["--pickup", "4"], "shorter than a bar"),
    (["--pickup", "1", "--form", "none"], "--pickup goes with a form"),
    (["--pickup", "1", "--steps", "64"], "--pickup goes with a form"),
])  # fmt: skip
def test_bad_pickups_are_one_line_errors(tiny_checkpoint, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["generate", "--model", str(tiny_checkpoint), "--form", "AB", "--bars", "4", *args, "--out", str(out)]
                if "--form" not in args and "--steps" not in args else
                ["generate", "--model", str(tiny_checkpoint), *args, "--out", str(out)]) == 2  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_an_asked_pickup_begins_the_melody_and_every_phrase(tiny_checkpoint):
    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    melody = generator.generate(GenerationConfig(form="A2 B2 A2 C2", pickup=1, meter="3/4", seed=3, max_copy=0))[0]
    assert melody.song.bar_starts[0] == 4  # a quarter at 4 steps per quarter
    assert melody.song.phrase_starts == [0, 24, 48, 72] and len(melody.tokens) == 96  # upbeat to upbeat
    assert melody.song.to_dict()["bar_starts"][:3] == [4, 16, 28]


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")
def test_shipped_model_draws_pickups_like_its_corpus():
    generator = Generator.from_checkpoint(None, "cpu")
    melodies = [generator.generate(GenerationConfig(seed=seed, bars=8, meter="4/4", max_copy=0))[0] for seed in range(12)]
    with_pickup = [m for m in melodies if m.song.bar_starts[0] > 0]
    assert 6 <= len(with_pickup) <= 12  # erk 4/4 major songs: 83% begin with a pickup
    for melody in with_pickup:
        assert all(start % 16 == 0 for start in melody.song.phrase_starts)  # pickup steps before a bar line
        assert melody.params["form_honoured"] == compliance(melody.song, melody.params["form"]).ok


def test_the_pickup_completes_the_last_bar_in_every_written_form():
    from music21 import converter

    from tunesmith.export.abc import abc_text
    from tunesmith.export.musicxml import musicxml_bytes
    from tunesmith.meter import bar_lines

    tune = Song([Note(67, 4), Note(72, 12), Note(71, 12), Note(72, 8)], meter="3/4", bar_starts=[4])  # upbeat, 2 bars, 2 beats
    assert bar_lines(tune) == [0, 4, 16, 28, 36]  # no rest pads the last bar
    assert abc_text(tune).rstrip().endswith("c4 |]")
    last = converter.parseData(musicxml_bytes(tune), format="musicxml").parts[0].getElementsByClass("Measure")[-1]
    assert [type(e).__name__ for e in last.notesAndRests] == ["Note"]
    other = Song([Note(67, 4), Note(72, 12), Note(71, 12), Note(72, 4)], meter="3/4", bar_starts=[4])
    assert bar_lines(other)[-1] == 40  # a last bar the pickup does not complete is padded, as before
