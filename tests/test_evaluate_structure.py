"""Structure metrics (repetition, self-similarity, endings, form compliance) on hand-made songs."""

import random

import numpy as np
import pytest

from tunesmith.evaluate import structure
from tunesmith.song import Note, Song, regular_bar_starts

# Two 2-bar phrases in 4/4 (16 steps a bar); A ends on the tonic, B on the dominant.
PHRASE_A = [(60, 4), (62, 4), (64, 4), (65, 4), (67, 8), (64, 4), (60, 4)]
PHRASE_B = [(69, 2), (71, 2), (72, 4), (69, 8), (65, 4), (64, 4), (62, 4), (67, 4)]


def make_song(phrases, mode="major", marked=True, tail=()):
    notes, starts, step = [], [], 0
    for phrase in phrases:
        starts.append(step)
        for pitch, steps in phrase:
            notes.append(Note(pitch, steps))
            step += steps
    for pitch, steps in tail:
        notes.append(Note(pitch, steps))
        step += steps
    return Song(notes=notes, meter="4/4", mode=mode, bar_starts=regular_bar_starts(step, 16),
                phrase_starts=starts if marked else [], phrase_source="kern marks" if marked else "")  # fmt: skip


def aaba():
    return make_song([PHRASE_A, PHRASE_A, PHRASE_B, PHRASE_A])


def random_song(seed):
    rng = random.Random(seed)
    notes, steps = [], 0
    while steps < 8 * 16:
        length = rng.choice([2, 4, 6, 8])
        notes.append((rng.randrange(55, 80), length))
        steps += length
    return make_song([notes], marked=False)


def test_a_restated_song_repeats_itself_and_a_random_one_does_not():
    song, noise = aaba(), random_song(1)
    assert structure.repetition_share(song) > 0.25  # 8 of 26 patterns restate A (real erk songs: ~14%)
    assert structure.repetition_share(noise) < 0.1
    # Phrases 2 and 4 restate A exactly; B matches nothing well.
    assert structure.phrase_similarity(song) > 0.7
    assert structure.phrase_similarity(noise) < structure.phrase_similarity(song) - 0.3
    assert structure.bar_similarity(song) > structure.bar_similarity(noise)


def test_self_similarity_matrix_shows_the_restatements():
    matrix = structure.self_similarity_matrix(aaba())
    assert matrix.shape == (8, 8)  # four 2-bar phrases
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 2] == 1.0 and matrix[1, 3] == 1.0 and matrix[0, 6] == 1.0  # bars of A and its returns
    assert matrix[0, 4] < 1.0  # A's first bar against B's


def test_bar_items_are_transposition_invariant_and_skip_the_pickup():
    song = Song(notes=[Note(55, 4), Note(60, 8), Note(64, 8), Note(62, 8), Note(66, 8)], meter="4/4",
                bar_starts=[4, 20])  # fmt: skip
    assert structure.bar_items(song) == [[(0, 8), (4, 8)], [(0, 8), (4, 8)]]


def test_tonic_ending_and_final_note_length():
    song = aaba()
    assert structure.tonic_ending(song) == 1.0 and structure.final_note_length(song) == 1.0
    on_dominant = make_song([PHRASE_A, PHRASE_B])
    assert structure.tonic_ending(on_dominant) == 0.0
    minor = make_song([[(69, 8), (71, 8), (72, 8), (69, 8)]], mode="minor")  # ends on A in A minor
    assert structure.tonic_ending(minor) == 1.0
    # A trailing rest is not the final note: the long tonic before it is.
    held = make_song([[(64, 8), (62, 8), (60, 12)]], tail=[(None, 4)])
    assert structure.final_note_length(held) == 3.0 and structure.tonic_ending(held) == 1.0
    assert structure.final_note_length(Song(notes=[])) == 0.0 and structure.tonic_ending(Song(notes=[])) == 0.0


def test_phrase_final_degrees():
    degrees = structure.phrase_final_degrees(aaba())  # A, A, B end on 1, 1, 5 (the last phrase is not counted)
    expected = np.zeros(len(structure.DEGREE_BINS))
    expected[0], expected[4] = 2 / 3, 1 / 3
    np.testing.assert_allclose(degrees, expected)
    assert not structure.phrase_final_degrees(make_song([PHRASE_A])).any()


def test_compliance_rate_only_for_requested_forms():
    songs = [aaba(), aaba(), make_song([PHRASE_A, PHRASE_B, PHRASE_B, PHRASE_A])]
    assert structure.compliance_rate(songs, [None, "", None]) is None
    rate = structure.compliance_rate(songs, ["AABA", "ABCD", "AABA"])
    assert rate["requested"] == 3 and rate["honoured"] == pytest.approx(1 / 3)
    assert 0.0 < rate["pair_score"] < 1.0 and rate["forms"] == {"AABA": 2, "ABCD": 1}


def test_structure_summary_of_a_set():
    summary = structure.structure_summary([aaba(), random_song(2)], ["AABA", None])
    assert summary["songs"] == 2 and summary["tonic_endings"] in (0.5, 1.0)
    assert summary["repetition"] == pytest.approx(
        (structure.repetition_share(aaba()) + structure.repetition_share(random_song(2))) / 2)
    assert summary["phrase_final_degrees"]["1"] > 0
    assert summary["compliance"]["requested"] == 1 and summary["compliance"]["honoured"] == 1.0


def test_self_similarity_is_one_minus_the_distance_of_each_pair_of_bars():
    from tunesmith.form import distance

    for song in (aaba(), random_song(2), make_song([PHRASE_A, PHRASE_B], tail=[(None, 8), (60, 8)])):
        bars = structure.bar_items(song)
        matrix = structure.self_similarity_matrix(song)
        expected = [[1.0 if i == j else 1.0 - distance(a, b) for j, b in enumerate(bars)] for i, a in enumerate(bars)]
        assert matrix.tolist() == expected  # bit for bit
