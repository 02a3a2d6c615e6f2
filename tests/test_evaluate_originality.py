"""The originality index: transposition-invariant shared stretches, found through a suffix automaton."""

import numpy as np
import pytest

from tunesmith.evaluate.originality import OriginalityIndex, SuffixAutomaton, note_symbols, originality
from tunesmith.song import Note, Song

PHRASE = [(60, 4), (62, 4), (64, 2), (65, 2), (67, 4), (65, 4), (64, 4), (62, 4), (60, 8)]


def song(pairs, meter="4/4"):
    return Song(notes=[Note(p, s) for p, s in pairs], steps_per_quarter=4, meter=meter)


def shifted(pairs, semitones):
    return [(None if p is None else p + semitones, s) for p, s in pairs]


def test_symbols_are_intervals_and_lengths():
    assert note_symbols([Note(60, 4), Note(None, 2), Note(67, 2)]) == [("first", 4), ("rest", 2), (7, 2)]
    assert note_symbols(song(shifted(PHRASE, 5)).notes)[1:] == note_symbols(song(PHRASE).notes)[1:]


def test_suffix_automaton_matching_lengths():
    automaton = SuffixAutomaton()
    for symbol in [1, 2, 3, 1, 2, 4]:
        automaton.extend(symbol)
    np.testing.assert_array_equal(automaton.matching_lengths([2, 3, 1, 2, 4, 9, 3]), [1, 2, 3, 4, 5, 0, 1])


def test_repeated_phrase_is_found_transposed_inside_a_new_melody():
    corpus = [song([(70, 2), (69, 2)] + PHRASE + [(50, 16)]), song([(72, 16), (74, 16)])]
    index = OriginalityIndex(corpus)
    melody = song([(55, 2), (58, 6)] + shifted(PHRASE, -3) + [(61, 2), (70, 2)])
    match = index.longest_match(melody)
    # The phrase's first note arrives by a different interval, so the shared stretch is its last 8 notes.
    assert match.notes == len(PHRASE) - 1
    assert match.start == 3
    assert match.steps == sum(s for _, s in PHRASE[1:])
    assert match.bars == pytest.approx(match.steps / 16)


def test_stretches_do_not_run_across_songs():
    first, second = PHRASE[:4], PHRASE[4:]
    index = OriginalityIndex([song(first), song([(40, 4)] + shifted(second, -20))])
    # Both halves are in the corpus, but never one after the other.
    assert index.longest_match(song(PHRASE)).notes < len(PHRASE) - 1


def test_originality_statistics_and_copy_share():
    index = OriginalityIndex([song(PHRASE * 2)])
    copy = song(shifted(PHRASE * 2, 2))
    fresh = song([(60, 1), (73, 3), (50, 5), (None, 3), (61, 7)])
    result = originality(index, [copy, fresh], copy_bars=2.0)
    assert result["longest_notes"][0] == 2 * len(PHRASE)  # a whole-song copy matches from its first note
    assert result["longest_bars"][1] < 1.0
    assert result["copy_share"] == 0.5


def test_melody_sharing_nothing():
    index = OriginalityIndex([song([(60, 4), (62, 4)])])
    assert index.longest_match(song([(60, 3), (70, 5)])).notes == 0
