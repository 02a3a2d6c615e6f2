"""Generated-vs-real classifier and the dry-out curve."""

import numpy as np
import pytest

from tunesmith.evaluate.classifier import ClassifierConfig, discriminate, feature_names
from tunesmith.evaluate.dryout import density_curve, dryout, quarter_ratio
from tunesmith.evaluate.metrics import feature_table
from tunesmith.song import Note, Song


def random_songs(rng, count, pitches, lengths):
    songs = []
    for _ in range(count):
        notes = [Note(int(rng.choice(pitches)), int(rng.choice(lengths))) for _ in range(24)]
        songs.append(Song(notes=notes, steps_per_quarter=4, meter="4/4"))
    return songs


def test_classifier_separates_different_sets_and_not_identical_ones():
    rng = np.random.default_rng(0)
    real = feature_table(random_songs(rng, 40, [60, 62, 64, 65, 67], [2, 4]))
    chromatic = feature_table(random_songs(rng, 40, list(range(48, 84)), [1, 3, 6]))
    same = feature_table(random_songs(rng, 40, [60, 62, 64, 65, 67], [2, 4]))
    config = ClassifierConfig(trees=50, folds=4)
    assert discriminate(real, chromatic, config)["accuracy"] > 0.9
    result = discriminate(real, same, config)
    assert 0.2 < result["accuracy"] < 0.8
    assert result["per_set"] == 40 and result["folds"] == 4 and len(result["top_features"]) == 5
    logistic = discriminate(real, chromatic, ClassifierConfig(kind="logistic", folds=4))
    assert logistic["accuracy"] > 0.9 and logistic["top_features"] == []


def test_feature_names_follow_the_matrix_columns():
    table = feature_table(random_songs(np.random.default_rng(1), 2, [60], [4]))
    names = feature_names(table)
    assert names[0] == "pitch_count" and "pitch_class_histogram[11]" in names


def test_classifier_sees_the_structure_features():
    rng = np.random.default_rng(2)
    table = feature_table(random_songs(rng, 12, [60, 62, 64], [2, 4]))
    names = feature_names(table)
    for name in ("repetition", "phrase_similarity", "bar_similarity", "tonic_ending", "final_note_length",
                 "phrase_final_degrees[0]"):  # fmt: skip
        assert name in names
    # Songs that differ only in how they end: the structure features tell them apart, the rest cannot.
    ending_on_c = random_songs(rng, 30, [60, 62, 64], [2, 4])
    ending_on_d = [Song(notes=s.notes[:-1] + [Note(62, 4)], steps_per_quarter=4, meter="4/4") for s in ending_on_c]
    ending_on_c = [Song(notes=s.notes[:-1] + [Note(60, 4)], steps_per_quarter=4, meter="4/4") for s in ending_on_c]
    config = ClassifierConfig(trees=30, folds=3)
    structured = discriminate(feature_table(ending_on_c), feature_table(ending_on_d), config)
    assert structured["accuracy"] > 0.9 and structured["structure"]
    assert structured["top_features"][0][0] == "tonic_ending" or "final" in structured["top_features"][0][0]
    plain = discriminate(feature_table(ending_on_c), feature_table(ending_on_d), ClassifierConfig(trees=30, folds=3,
                                                                                                 structure=False))
    assert plain["accuracy"] < structured["accuracy"] and not plain["structure"]
    assert all(n not in ("tonic_ending", "repetition") for n, _ in plain["top_features"])


def test_quarter_ratio():
    assert quarter_ratio(np.array([4, 4, 2, 2, 2, 2, 1, 1])) == pytest.approx(0.25)
    assert quarter_ratio(np.ones(12)) == 1.0
    assert np.isnan(quarter_ratio(np.array([1, 2, 3])))


def drying(bars):
    # Bar i holds (bars − i) // 4 + 1 notes filling 16 steps: density falls steadily.
    notes = []
    for i in range(bars):
        count = max(1, (bars - i) // 4)
        lengths = [16 // count] * count
        lengths[-1] += 16 - sum(lengths)
        notes += [Note(60 + (j % 5), s) for j, s in enumerate(lengths)]
    return Song(notes=notes, steps_per_quarter=4, meter="4/4", bar_starts=list(range(0, 16 * bars, 16)))


def test_density_curve_counts_only_melodies_that_reach_a_bar():
    short = Song(notes=[Note(60, 4)] * 8, steps_per_quarter=4, meter="4/4", bar_starts=[0, 16])
    curve, reached = density_curve([drying(16), short], 16)
    assert reached[:2].tolist() == [2, 2] and reached[2:].tolist() == [1] * 14
    assert curve[0] == pytest.approx((4 + 4) / 2)


def test_dryout_reports_falling_density_and_a_steady_reference():
    steady = [Song(notes=[Note(60, 4)] * 64, steps_per_quarter=4, meter="4/4", bar_starts=list(range(0, 256, 16)))]
    result = dryout([drying(32)] * 3, steady, bars=32)
    assert result["ratio"] < 0.5
    assert result["median_song_ratio"] == pytest.approx(result["ratio"])
    assert result["real_ratio"] == 1.0 and result["real_songs"] == 1 and result["real_notes_per_bar"] == 4.0
    assert result["mean_bars"] == 32 and len(result["curve"]) == 32
