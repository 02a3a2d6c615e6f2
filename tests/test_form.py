"""Form analysis on hand-made songs: letters, form strings, compliance, repetition, statistics."""

from __future__ import annotations

import random

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.form import (
    FormPhrase,
    analyse,
    compliance,
    distance,
    draw_form,
    form_distribution,
    form_statistics,
    label_phrases,
    parse_form,
    repetition,
    rule_phrase_starts,
    scale_degree,
    song_phrases,
)
from tunesmith.song import Note, Song

# Two-bar phrases in 4/4 at 4 steps per quarter (16-step bars), as (pitch, steps).
A = [(60, 4), (62, 4), (64, 4), (65, 4), (67, 8), (67, 8)]
A_CADENCE = [(60, 4), (62, 4), (64, 4), (65, 4), (64, 4), (62, 4), (60, 8)]  # same first bar, new cadence
B = [(69, 4), (69, 4), (67, 4), (65, 4), (64, 16)]
C = [(72, 8), (71, 8), (69, 8), (67, 8)]
D = [(64, 2), (65, 2), (67, 4), (72, 8), (71, 4), (67, 4), (60, 8)]


def make_song(*phrases: list[tuple[int, int]], transpose: list[int] | None = None) -> Song:
    notes, starts, step = [], [], 0
    for i, phrase in enumerate(phrases):
        starts.append(step)
        shift = transpose[i] if transpose else 0
        for pitch, steps in phrase:
            notes.append(Note(pitch + shift, steps))
            step += steps
    return Song(notes=notes, meter="4/4", bar_starts=list(range(0, step, 16)), phrase_starts=starts,
                phrase_source="kern marks")  # fmt: skip


@pytest.mark.parametrize(
    ("phrases", "form"),
    [
        ((A, A, B, A), "A A B A"),
        ((A, A, B, B), "A A B B"),
        ((A, B, A, C), "A B A C"),
        ((A, A_CADENCE, B, A), "A A' B A"),
        ((A, B, C, D), "A B C D"),
    ],
)
def test_form_letters_of_hand_made_songs(phrases, form):
    assert analyse(make_song(*phrases)).form == form


def test_a_restatement_at_another_pitch_keeps_its_letter():
    song = make_song(A, A, B, A, transpose=[0, 5, 0, -2])
    assert label_phrases(song) == ["A", "A", "B", "A"]


def test_two_different_cadences_give_a_prime_and_a_double_prime():
    other = A_CADENCE[:4] + [(67, 4), (69, 4), (72, 8)]
    assert analyse(make_song(A, A_CADENCE, other)).form == "A A' A''"


def test_phrases_carry_length_final_note_degree_and_duration():
    phrases = song_phrases(make_song(A, B))
    assert [(p.start, p.steps, p.bars) for p in phrases] == [(0, 32, 2), (32, 32, 2)]
    assert [(p.final_pitch, p.final_degree, p.final_steps) for p in phrases] == [(67, "5", 8), (64, "3", 16)]
    assert analyse(make_song(A, A, B, A)).form_with_bars == "A2 A2 B2 A2"


def test_scale_degrees_in_major_and_minor():
    assert [scale_degree(p, "major") for p in (60, 62, 66, 70, 71)] == ["1", "2", "#4", "b7", "7"]
    assert [scale_degree(p, "minor") for p in (69, 72, 76, 79, 80)] == ["1", "3", "5", "7", "#7"]


def test_rule_cuts_after_long_notes_else_every_four_bars():
    # 2 bars ending on a half note, 2 more ending on a whole note, then 8 bars of running quarters
    cadence = [(60, 4), (62, 4), (64, 4), (65, 4), (67, 8), (67, 8)]
    running = [(60 + (i % 5), 4) for i in range(32)]
    song = Song(notes=[Note(p, s) for p, s in cadence + cadence + running], meter="4/4",
                bar_starts=list(range(0, 192, 16)))  # fmt: skip
    assert rule_phrase_starts(song) == [0, 32, 64, 128]


def test_rule_phrases_are_used_when_a_song_has_none():
    song = make_song(A, A, B, A)
    song.phrase_starts, song.phrase_source = [], ""
    result = analyse(song)
    assert result.source == "rule" and [p.start for p in result.phrases] == [0, 32, 64, 96]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AABA", ["A", "A", "B", "A"]),
        ("A A' B A", ["A", "A'", "B", "A"]),
        ("a a′ b a", ["A", "A'", "B", "A"]),
        ("ABAC", ["A", "B", "A", "C"]),
        ("A A' A'' B", ["A", "A'", "A''", "B"]),
    ],
)
def test_parse_form_letters(text, expected):
    assert [p.label for p in parse_form(text)] == expected


def test_parse_form_with_phrase_lengths():
    assert parse_form("A4 A4 B8 A4") == [FormPhrase("A", 0, 4), FormPhrase("A", 0, 4), FormPhrase("B", 0, 8),
                                         FormPhrase("A", 0, 4)]  # fmt: skip
    assert parse_form("A8A'8B8") == [FormPhrase("A", 0, 8), FormPhrase("A", 1, 8), FormPhrase("B", 0, 8)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty form"),
        ("   ", "empty form"),
        ("A9Z", "give a length in bars to every phrase or to none"),
        ("AZ", "expected B before Z"),
        ("BA", "expected A before B"),
        ("A B' B", "B' comes before any B"),
        ("A4 B0", "phrase length 0 is not 1–64 bars"),
        ("AAB-A", "unexpected '-' at position 4"),
    ],
)
def test_bad_form_strings_are_one_line_errors(text, message):
    with pytest.raises(TunesmithError, match=message) as info:
        parse_form(text)
    assert "\n" not in str(info.value)


def test_compliance_of_a_song_with_its_own_form_and_with_others():
    song = make_song(A, A, B, A)
    result = compliance(song, "AABA")
    assert result.ok and result.score == 1.0 and result.pairs == 6
    assert compliance(song, "A2 A2 B2 A2").ok
    wrong = compliance(song, "ABAC")
    assert not wrong.ok and wrong.pairs_ok < wrong.pairs
    assert "phrases 1 (A) and 2 (B) should be different, are same" in wrong.problems
    assert "phrase 1 lasts 2 bars, not 4" in compliance(song, "A4 A4 B4 A4").problems
    assert compliance(song, "AAB").problems[0] == "4 phrases, the form has 3"
    assert compliance(make_song(A, A_CADENCE, B, A), "A A' B A").ok


def test_repetition_counts_patterns_that_repeat_an_earlier_one():
    quarter = [Note(p, 4) for p in (60, 62, 64, 65, 60, 62, 64, 65)]
    # windows: (2,2,1) (2,1,-5) (1,-5,2) (-5,2,2) (2,2,1): the fifth repeats the first
    assert repetition(Song(notes=quarter)) == pytest.approx(1 / 5)
    assert repetition(Song(notes=[Note(60, 4)] * 3)) == 0.0
    assert repetition(make_song(A, A)) > repetition(make_song(A, B))


def test_corpus_statistics_and_drawing_a_form():
    songs = [make_song(A, A, B, A), make_song(A, A, B, A), make_song(A, B, A, C)]
    minor = make_song(A, A, B, B)
    minor.mode, minor.meter = "minor", "2/2"
    stats = form_statistics(songs + [minor])
    assert stats["forms_by_meter"]["4/4"]["top"] == [("A A B A", 2), ("A B A C", 1)]
    assert stats["phrase_bars"] == {2: 16} and stats["phrase_sources"] == {"kern marks": 4}
    assert stats["song_final_degrees"] == {"5": 4}  # G in C major, E in A minor
    distribution = form_distribution(songs + [minor])
    assert distribution[("4/4", "major")]["A2 A2 B2 A2"] == 2
    drawn = {" ".join(p.label for p in draw_form(distribution, "4/4", "major", random.Random(s))) for s in range(20)}
    assert drawn == {"A A B A", "A B A C"}
    assert [p.bars for p in draw_form(distribution, "2/2", "major", random.Random(0))] == [2, 2, 2, 2]
    with pytest.raises(TunesmithError, match="no song in 6/8"):
        draw_form(distribution, "6/8", "major")


def test_phrases_survive_serialisation_and_old_songs_load():
    song = make_song(A, B)
    again = Song.from_dict(song.to_dict())
    assert again.phrase_starts == [0, 32] and again.phrase_source == "kern marks"
    old = song.to_dict()
    del old["phrase_starts"], old["phrase_source"]
    assert Song.from_dict(old).phrase_starts == []


def test_distance_matrix_gives_every_pair_the_distance_bit_for_bit():
    from tunesmith.form.labels import distance_matrix

    rng = random.Random(5)

    def sequence():
        return [(rng.choice([None, 0, 2, -3, 5, 7]), rng.choice([1, 2, 4])) for _ in range(rng.choice([0, 1, 3, 8, 20]))]

    for _ in range(60):
        sequences = [sequence() for _ in range(rng.choice([0, 1, 2, 7]))]
        sequences += [list(s) for s in sequences[:2]]  # restated ones
        matrix = distance_matrix(sequences)
        assert matrix.shape == (len(sequences), len(sequences))
        for i, a in enumerate(sequences):
            for j, b in enumerate(sequences):
                assert matrix[i, j] == (0.0 if i == j else distance(a, b))  # exact, not approximately


def test_pair_distances_give_each_pair_the_distance_bit_for_bit_few_or_many(monkeypatch):
    from tunesmith.form import labels

    rng = random.Random(7)

    def sequence():
        return [(rng.choice([None, 0, 2, -3, 5, 7]), rng.choice([1, 2, 4])) for _ in range(rng.choice([0, 1, 3, 8, 30]))]

    for _ in range(80):
        pairs = [(sequence(), sequence()) for _ in range(rng.choice([0, 1, 3, 12]))]
        pairs += [(a, list(a)) for a, _ in pairs[:1]]  # a restated one
        expected = [distance(a, b) for a, b in pairs]
        assert labels.pair_distances(pairs) == expected  # exact, not approximately
        with monkeypatch.context() as batched:
            batched.setattr(labels, "BATCHED_CELLS", 0)  # all pairs at once, however few
            assert labels.pair_distances(pairs) == expected
