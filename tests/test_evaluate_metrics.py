"""Per-melody features on hand-made melodies with known answers."""

import math

import numpy as np
import pytest

from tunesmith.evaluate import metrics
from tunesmith.song import Note, Song

C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def song(pitches_and_steps, meter="4/4", bar_starts=None):
    notes = [Note(p, s) for p, s in pitches_and_steps]
    return Song(notes=notes, steps_per_quarter=4, meter=meter, bar_starts=bar_starts or [])


def scale_song():
    # Eight quarter notes up the C major scale: two 4/4 bars.
    return song([(p, 4) for p in C_MAJOR_SCALE], bar_starts=[0, 16])


def test_scale_has_scale_consistency_one():
    assert metrics.scale_consistency(scale_song()) == 1.0


def test_chromatic_notes_lower_scale_consistency():
    chromatic = song([(60 + i, 4) for i in range(12)])
    # Seven of the twelve pitch classes fit any one diatonic scale.
    assert metrics.scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_pitch_count_and_range():
    melody = scale_song()
    assert metrics.pitch_count(melody) == 8
    assert metrics.pitch_range(melody) == 12


def test_pitch_class_histogram_and_entropy():
    melody = scale_song()
    histogram = metrics.pitch_class_histogram(melody)
    expected = np.zeros(12)
    expected[[0, 2, 4, 5, 7, 9, 11]] = [2, 1, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(histogram, expected / 8)
    assert metrics.pitch_class_entropy(song([(60, 4), (72, 4)])) == 0.0
    uniform = song([(60 + i, 1) for i in range(12)])
    assert metrics.pitch_class_entropy(uniform) == pytest.approx(math.log2(12))


def test_intervals_skip_rests_and_clip_to_an_octave():
    melody = song([(60, 2), (None, 2), (64, 2), (40, 2)])
    np.testing.assert_array_equal(metrics.intervals(melody), [4, -24])
    histogram = metrics.interval_histogram(melody)
    assert histogram[12 + 4] == 0.5 and histogram[0] == 0.5
    assert metrics.mean_absolute_interval(melody) == 14.0


def test_note_length_histogram_counts_quarter_lengths():
    melody = song([(60, 4), (62, 4), (64, 2), (65, 5)])  # two quarters, an eighth, an odd length
    histogram = metrics.note_length_histogram(melody)
    lengths = metrics.DEFAULT_DURATIONS
    assert histogram[lengths.index(1.0)] == 0.5
    assert histogram[lengths.index(0.5)] == 0.25
    assert histogram[-1] == 0.25


def test_inter_onset_interval_includes_rests():
    melody = song([(60, 4), (None, 4), (62, 2), (64, 2)])
    assert metrics.inter_onset_interval(melody) == pytest.approx((8 + 2) / 2 / 4)


def test_bar_counts_notes_per_bar_rest_ratio_and_empty_bars():
    # Bar 1: four quarters; bar 2: a whole rest; bar 3: one whole note.
    melody = song([(60, 4), (62, 4), (64, 4), (65, 4), (None, 16), (67, 16)], bar_starts=[0, 16, 32])
    np.testing.assert_array_equal(metrics.bar_note_counts(melody), [4, 0, 1])
    assert metrics.notes_per_bar(melody) == pytest.approx(5 / 3)
    assert metrics.rest_ratio(melody) == pytest.approx(16 / 48)
    assert metrics.empty_bar_rate(melody) == pytest.approx(1 / 3)


def test_pickup_is_not_a_bar_and_regular_bars_fill_in():
    pickup = song([(55, 4), (60, 12), (62, 12)], meter="3/4", bar_starts=[4, 16])
    np.testing.assert_array_equal(metrics.bar_note_counts(pickup), [1, 1])
    no_bar_lines = song([(60, 4)] * 8)  # 4/4 without bar_starts: bars every 16 steps
    np.testing.assert_array_equal(metrics.bar_note_counts(no_bar_lines), [4, 4])


def test_empty_melody_gives_zeros():
    empty = song([(None, 8)])
    assert metrics.pitch_count(empty) == 0 and metrics.pitch_range(empty) == 0
    assert metrics.scale_consistency(empty) == 0.0 and metrics.pitch_class_entropy(empty) == 0.0
    assert not metrics.pitch_class_histogram(empty).any()
    assert metrics.rest_ratio(empty) == 1.0


def test_feature_table_and_matrix_shapes():
    from tunesmith.evaluate.structure import DEGREE_BINS, STRUCTURE_FEATURES

    table = metrics.feature_table([scale_song(), scale_song()])
    assert list(table) == list(metrics.FEATURES) + list(STRUCTURE_FEATURES)
    assert table["pitch_class_histogram"].shape == (2, 12)
    assert table["interval_histogram"].shape == (2, 25)
    assert table["phrase_final_degrees"].shape == (2, len(DEGREE_BINS))
    matrix = metrics.feature_matrix(table)
    note_level = 9 + 12 + 25 + len(metrics.DEFAULT_DURATIONS) + 1
    assert matrix.shape == (2, note_level + 5 + len(DEGREE_BINS))
    plain = metrics.feature_table([scale_song()], structure=False)
    assert list(plain) == list(metrics.FEATURES)


def test_bars_continue_in_the_meter_after_the_last_bar_line():
    one_line = song([(60, 4)] * 12, bar_starts=[0])  # a tune whose only known bar line is the first
    np.testing.assert_array_equal(metrics.bar_note_counts(one_line), [4, 4, 4])
