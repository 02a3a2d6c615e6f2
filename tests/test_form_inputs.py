"""Form inputs (tunesmith.form.inputs): phrase ends, roles and the phrase-level lookback."""

from __future__ import annotations

from tunesmith.form import inputs as fi
from tunesmith.song import Note, Song

HOLD, PAD = 3, 0


def test_plan_counts_steps_to_phrase_end_and_points_restatements_at_their_source():
    # A (8 steps) B (8) A (8): the third phrase restates the first, step by step
    plan = fi.plan_steps(24, [0, 8, 16], ["A", "B", "A"])
    assert len(plan) == 25  # steps 0..24, the last is where </s> is predicted
    assert [p.to_end for p in plan[:9]] == [9, 8, 7, 6, 5, 4, 3, 2, 9]
    assert plan[24].to_end == 1 and plan[23].to_end == 2
    assert [plan[0].left, plan[8].left, plan[16].left] == [3, 2, 1]
    assert [plan[0].role, plan[8].role, plan[16].role] == [1, 1, 4]  # new, new, restated + last
    assert [p.source for p in plan[16:24]] == list(range(8))
    assert plan[24].source == -1 and plan[3].source == -1


def test_variant_reads_the_letter_and_a_longer_phrase_runs_past_its_source():
    plan = fi.plan_steps(14, [0, 4], ["A", "A'"])
    assert plan[4].role == 2 * 2 + 1 + 1  # variant, last
    assert [p.source for p in plan[4:15]] == [0, 1, 2, 3] + [-1] * 7


def test_rows_read_the_token_and_sounding_pitch_of_the_restated_phrase():
    ids = [10, HOLD, 12, 13, 10, HOLD, 12, 14]
    rows = fi.rows(fi.plan_steps(8, [0, 4], ["A", "A"]), ids, HOLD, PAD)
    assert rows[0][3:] == [PAD, PAD]
    assert [r[3] for r in rows[4:8]] == [10, HOLD, 12, 13]
    assert rows[5][4] == 10  # the hold at step 1 sounds pitch token 10
    track = fi.FormTrack(fi.plan_steps(8, [0, 4], ["A", "A"]), HOLD, PAD)
    for step, token in enumerate(ids):
        assert track.row(step) == rows[step]
        track.push(token)
    assert track.row(8) == rows[8] and track.row(9) == [0] * fi.WIDTH


def test_song_form_rows_use_the_songs_phrases_and_letters():
    notes = [Note(60, 4), Note(62, 4), Note(64, 4), Note(60, 4)] * 2 + [Note(67, 4), Note(65, 4), Note(64, 8)] * 2
    song = Song(notes=notes, meter="4/4", mode="major", steps_per_quarter=4,
                bar_starts=list(range(0, 64, 16)), phrase_starts=[0, 16, 32, 48], phrase_source="kern marks")
    ids = list(range(64))
    rows = fi.song_form_rows(song, ids, HOLD, PAD)
    assert len(rows) == 65
    assert fi.song_form(song) == ([0, 16, 32, 48], ["A", "A", "B", "B"])
    assert [r[3] for r in rows[16:32]] == ids[0:16]
    assert [r[3] for r in rows[32:48]] == [PAD] * 16  # B is new
    assert [r[3] for r in rows[48:64]] == ids[32:48]
    assert rows[64][:3] == [1, 1, 2 * 1 + 1 + 1]
