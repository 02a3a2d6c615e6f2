"""Playback: humanized timing and dynamics, the chord accompaniment, instruments and their checks."""

import re

import mido
import numpy as np
import pytest

from tunesmith.errors import TunesmithError
from tunesmith.export import ExportConfig, write
from tunesmith.export import humanize as hz
from tunesmith.export.accompaniment import accompaniment, pattern
from tunesmith.export.audio import audio_available
from tunesmith.export.midi import perform
from tunesmith.generate import Melody
from tunesmith.instruments import INSTRUMENTS, playable_range
from tunesmith.song import Chord, Note, Song

# Sixteen bars of running eighths in D major, 4/4: enough notes for timing statistics.
SCALE = [62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 67, 66, 64]
LONG = Song(notes=[Note(SCALE[i % len(SCALE)], 2) for i in range(128)], meter="4/4",
            bar_starts=list(range(0, 256, 16)), key="D", title="Long")  # fmt: skip


def onsets(path, track=1):
    now, result = 0, []
    for message in mido.MidiFile(str(path)).tracks[track]:
        now += message.time
        if message.type == "note_on" and message.velocity:
            result.append((now, message.note, message.velocity))
    return result


def test_midi_is_on_the_grid_unless_humanize_is_asked(tmp_path):
    plain = onsets(write(LONG, tmp_path / "plain.mid"))
    assert [t for t, _, _ in plain] == [240 * i for i in range(128)]
    played = onsets(write(LONG, tmp_path / "human.mid", humanize=0.5, humanize_seed=3))
    assert [t for t, _, _ in played] != [t for t, _, _ in plain]
    assert [n for _, n, _ in played] == [n for _, n, _ in plain]


def test_humanize_is_deterministic_under_a_seed_and_never_changes_the_score(tmp_path):
    a = write(LONG, tmp_path / "a.mid", humanize=0.6, humanize_seed=7).read_bytes()
    b = write(LONG, tmp_path / "b.mid", humanize=0.6, humanize_seed=7).read_bytes()
    c = write(LONG, tmp_path / "c.mid", humanize=0.6, humanize_seed=8).read_bytes()
    assert a == b != c
    plain = write(LONG, tmp_path / "a.musicxml").read_text()
    humanized = write(LONG, tmp_path / "b.musicxml", humanize=1.0, humanize_seed=1).read_text()
    music = lambda xml: re.sub(r'\bid="[^"]*"', "", xml.split("<part ")[1])  # noqa: E731 (music21's ids are random)
    assert music(humanized) == music(plain)
    melody = Melody(tokens=[], song=LONG, params={"seed": 7, "export": {"humanize": 0.6}})  # the melody's own seed
    assert melody.write(tmp_path / "m.mid").read_bytes() == a


def test_timing_drifts_rather_than_jitters():
    offsets = hz.drift(4000, 1.0, np.random.default_rng(0))
    assert 0.8 * hz.DRIFT_MS < offsets.std() < 1.2 * hz.DRIFT_MS
    lag1 = np.corrcoef(offsets[1:], offsets[:-1])[0, 1]
    assert 0.75 < lag1 < 0.92  # close to DRIFT_PHI: neighbouring notes lean the same way
    assert not hz.drift(10, 0.0, np.random.default_rng(0)).any()


def test_velocity_follows_the_bar_and_the_phrase():
    config = ExportConfig(humanize=0.8, humanize_seed=5).validate()
    performance = perform(LONG, config, 0.8)
    velocity = np.array([v for _, _, _, v in performance.melody])
    down = np.array(performance.downbeats)
    assert velocity[down].mean() > velocity[~down].mean() + 8
    phrase = np.arange(len(velocity)) % 32  # four-bar phrases of 32 eighths
    middle, edges = velocity[(phrase >= 12) & (phrase < 20)].mean(), velocity[(phrase < 4) | (phrase >= 28)].mean()
    assert middle > edges + 5
    assert hz.phrase_arch(0, [0, 64], 128) == -0.5 and hz.phrase_arch(32, [0, 64], 128) == 1.0


def test_final_ritardando_slows_only_the_last_bar():
    grid = np.arange(0, 257, 2)
    played = hz.ritardando(grid, 240, 256, 1.0)
    gaps = np.diff(played)
    assert np.allclose(gaps[:120], 2.0)
    assert gaps[-1] > gaps[-4] > 2.0
    assert played[-1] - played[-9] == pytest.approx(16 * (1 + hz.RITARDANDO / 3))


def test_chord_track_plays_the_meters_pattern(tmp_path):
    song = Song(notes=[Note(67, 12), Note(71, 12), Note(74, 12), Note(67, 12)], meter="3/4", bar_starts=[0, 12, 24, 36],
                key="G", chords=[Chord(0, 24, 7, "maj", "I", "G"), Chord(24, 12, 2, "7", "V7", "D7"),
                                 Chord(36, 12, 7, "maj", "I", "G")])  # fmt: skip
    events = accompaniment(song)
    assert [(e.start, e.bass) for e in events[:3]] == [(0, True), (4, False), (8, False)]  # oom-pah-pah
    assert events[0].pitches == (43,) and events[1].pitches == (55, 59, 62)  # G2; G3 B3 D4
    assert events[6].pitches == (50,) and events[7].pitches == (57, 60, 62, 66)  # D3; A3 C4 D4 F#4
    midi = mido.MidiFile(str(write(song, tmp_path / "song.mid", chord_program=22)))
    assert len(midi.tracks) == 3
    chords = [m for m in midi.tracks[2] if m.type in ("program_change", "note_on")]
    assert chords[0].program == 21 and all(m.channel == 1 for m in chords)
    assert [round(o[0] / 480) for o in onsets(tmp_path / "song.mid", 2) if o[1] < 52] == [0, 3, 6, 9]
    assert [h[2] for h in pattern("2/4", 4, 8)] == ["root", "chord"]
    assert [h[:2] for h in pattern("6/8", 4, 12)] == [(0, 4), (4, 2), (6, 4), (10, 2)]


def test_instruments_set_program_tempo_and_octave(tmp_path):
    assert set(INSTRUMENTS) == {"fiddle", "whistle", "flute", "accordion", "voice", "piano"}
    assert playable_range("whistle") == (62, 86)
    song = Song(notes=[Note(62, 4), Note(66, 4), Note(69, 8)], meter="2/4", bar_starts=[0, 8], key="D")
    midi = mido.MidiFile(str(write(song, tmp_path / "w.mid", instrument="whistle", bpm=0)))
    messages = [m for track in midi.tracks for m in track]
    assert [m.program for m in messages if m.type == "program_change"] == [78]  # GM 79, whistle
    assert [m.note for m in messages if m.type == "note_on"] == [74, 78, 81]  # sounds an octave up
    assert round(mido.tempo2bpm(next(m.tempo for m in messages if m.type == "set_tempo"))) == 104
    assert ExportConfig(instrument="fiddle").validate().gm_program == 41
    assert ExportConfig(instrument="fiddle", bpm=90).validate().bpm == 90


@pytest.mark.parametrize(("options", "message"), [
    ({"humanize": 2}, r"--humanize must be in 0\.\.1, got 2"),
    ({"humanize": -0.1}, "--humanize"),
    ({"instrument": "banjo"}, "unknown instrument 'banjo'; known: fiddle, whistle"),
    ({"instrument": "voice"}, "melody reaches D6, too high for the voice"),
    ({"instrument": "fiddle"}, None),
])  # fmt: skip
def test_bad_settings_are_one_line_errors(options, message, tmp_path):
    song = Song(notes=[Note(62, 4), Note(86, 4)], meter="2/4", bar_starts=[0], key="D")
    if message is None:
        assert write(song, tmp_path / "ok.mid", **options).is_file()
        return
    with pytest.raises(TunesmithError, match=message) as error:
        write(song, tmp_path / "bad.mid", **options)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not audio_available(), reason="fluidsynth or a GM soundfont is not installed")
def test_wav_is_humanized_by_default_with_chords(tmp_path, monkeypatch):
    import tunesmith.export.midi as midi_module
    from tunesmith.export import audio

    amounts = []
    original = midi_module.to_midi_file

    def spy(song, config, humanize=0.0):
        amounts.append(humanize)
        return original(song, config, humanize)

    monkeypatch.setattr(midi_module, "to_midi_file", spy)
    song = Song(notes=[Note(67, 4)] * 8, meter="2/4", bar_starts=[0, 8, 16, 24], key="G",
                chords=[Chord(0, 32, 7, "maj", "I", "G")])  # fmt: skip
    data = write(song, tmp_path / "song.wav", sample_rate=22050).read_bytes()
    assert data[:4] == b"RIFF" and len(data) > 22050
    write(song, tmp_path / "plain.wav", sample_rate=22050, humanize=0)
    assert amounts == [audio.DEFAULT_HUMANIZE, 0]
