"""Every output format: MIDI and MusicXML read back with music21, PNG/SVG/WAV/JSON written."""

import mido
import pytest
from synthetic_songs import timed_notes

from tunesmith.errors import TunesmithError
from tunesmith.export import ExportConfig, write
from tunesmith.export.audio import audio_available
from tunesmith.generate import Melody
from tunesmith.song import Note, Song

# D major 4/4: a tie across the bar line (B4, 6 steps from step 12), a dotted quarter, a rest.
D_MAJOR = Song(
    notes=[Note(62, 4), Note(66, 2), Note(69, 2), Note(74, 4), Note(71, 6), Note(69, 2), Note(None, 2),
           Note(67, 6), Note(66, 4), Note(64, 4), Note(62, 16)],
    steps_per_quarter=4, meter="4/4", bar_starts=[0, 16, 32], mode="major", key="D", title="Round trip",
)  # fmt: skip
# G minor 6/8 with a one-eighth pickup: bars start at step 2.
G_MINOR_PICKUP = Song(
    notes=[Note(62, 2), Note(67, 6), Note(70, 2), Note(69, 2), Note(67, 2), Note(66, 4), Note(67, 2), Note(62, 12)],
    steps_per_quarter=4, meter="6/8", bar_starts=[2, 14, 26], mode="minor", key="G", title="Pickup",
)  # fmt: skip


def read_back(path):
    from music21 import converter, key, meter

    score = converter.parse(str(path)).stripTies()
    notes = [(n.pitch.midi, float(n.offset), float(n.quarterLength)) for n in score.flatten().notes]
    meters = [m.ratioString for m in score.recurse().getElementsByClass(meter.TimeSignature)]
    keys = list(score.recurse().getElementsByClass(key.KeySignature))
    return notes, meters, keys


@pytest.mark.parametrize("song", [D_MAJOR, G_MINOR_PICKUP], ids=["d-major", "g-minor-pickup"])
def test_musicxml_round_trip(song, tmp_path):
    path = write(song, tmp_path / "song.musicxml")
    notes, meters, keys = read_back(path)
    assert notes == timed_notes(song)
    assert meters[0] == song.meter
    assert (keys[0].tonic.name, keys[0].mode) == (song.key, song.mode)
    assert "<work-title>" in path.read_text() or song.title in path.read_text()


@pytest.mark.parametrize("song", [D_MAJOR, G_MINOR_PICKUP], ids=["d-major", "g-minor-pickup"])
def test_midi_round_trip(song, tmp_path):
    path = write(song, tmp_path / "song.mid", bpm=90, program=74)
    notes, meters, keys = read_back(path)
    assert notes == timed_notes(song)
    assert meters[0] == song.meter
    assert keys[0].sharps == {"D": 2, "G": -2}[song.key]
    messages = [m for track in mido.MidiFile(str(path)).tracks for m in track]
    assert [round(mido.tempo2bpm(m.tempo)) for m in messages if m.type == "set_tempo"] == [90]
    assert [m.program for m in messages if m.type == "program_change"] == [73]  # GM 74 = flute, 0-based
    key_meta = [m.key for m in messages if m.type == "key_signature"]
    assert key_meta == [{"D": "D", "G": "Gm"}[song.key]]


def test_midi_velocities_accent_the_bar(tmp_path):
    path = write(D_MAJOR, tmp_path / "song.mid", velocity=70)
    onsets = [m.velocity for track in mido.MidiFile(str(path)).tracks for m in track if m.type == "note_on"]
    # Bar 1: D (downbeat), F# (beat 2), A (off-beat), D (beat 3), B (beat 4, tied into bar 2).
    assert onsets[:5] == [86, 76, 70, 76, 76]


def test_melody_json_round_trip_and_key_of_a_transposed_melody(tmp_path):
    song = Song(notes=[Note(70, 4), Note(74, 4), Note(77, 8)], meter="2/4", bar_starts=[0, 8], key="B-",
                title="Melody 1 in Bb major")  # fmt: skip
    melody = Melody(tokens=["70", "_", "_", "_", "74", "_", "_", "_", "77"] + ["_"] * 7, song=song,
                    params={"seed": 3, "export": {"bpm": 120.0, "program": 41}})  # fmt: skip
    assert Melody.load(melody.write(tmp_path / "melody.json")) == melody
    _, _, keys = read_back(melody.write(tmp_path / "melody.musicxml"))
    assert keys[0].sharps == -2
    messages = list(mido.MidiFile(str(melody.write(tmp_path / "melody.mid"))).tracks[1])
    assert [m.program for m in messages if m.type == "program_change"] == [40]  # stored export settings


def test_piano_roll_and_score_images(tmp_path):
    png = write(D_MAJOR, tmp_path / "roll.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = write(G_MINOR_PICKUP, tmp_path / "score.svg").read_text()
    assert svg.lstrip().startswith(("<svg", "<?xml")) and "</svg>" in svg


def test_score_engraves_in_any_thread(tmp_path):
    """verovio keeps its default font folder per thread: a server's worker thread engraves too."""
    import threading

    import verovio  # imported here, in the main thread, as a server does

    from tunesmith.export.score import score_svg

    here = score_svg(G_MINOR_PICKUP)
    assert verovio and here.count('class="note"') == 9  # 8 notes, the last tied over the bar line
    found = {}
    worker = threading.Thread(target=lambda: found.update(svg=score_svg(G_MINOR_PICKUP)))
    worker.start()
    worker.join()
    for part in ('class="note"', 'class="measure', "<use xlink:href=", 'width="'):  # notes, bars, glyphs, size
        assert found["svg"].count(part) == here.count(part), part


def test_musicxml_writes_a_treble_clef_or_a_bass_clef_for_a_low_melody(tmp_path):
    from music21 import clef, converter

    low = Song(notes=[Note(43, 4), Note(47, 4), Note(50, 4), Note(62, 4)], title="Low")
    for song, kind in ((D_MAJOR, clef.TrebleClef), (G_MINOR_PICKUP, clef.TrebleClef), (low, clef.BassClef)):
        parsed = converter.parse(str(write(song, tmp_path / "clef.musicxml")))
        clefs = list(parsed.recurse().getElementsByClass(clef.Clef))
        assert len(clefs) == 1 and type(clefs[0]) is kind, (song.title, clefs)


@pytest.mark.skipif(not audio_available(), reason="fluidsynth or a GM soundfont is not installed")
def test_wav_through_fluidsynth(tmp_path):
    data = write(D_MAJOR, tmp_path / "song.wav", sample_rate=22050).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 22050  # at least half a second


def test_unknown_suffix_and_bad_settings(tmp_path):
    with pytest.raises(TunesmithError, match="unknown suffix"):
        write(D_MAJOR, tmp_path / "song.mp3")
    with pytest.raises(TunesmithError, match="program"):
        write(D_MAJOR, tmp_path / "song.mid", program=0)
    with pytest.raises(TunesmithError, match="unknown export option"):
        write(D_MAJOR, tmp_path / "song.mid", tempo=90)
    assert ExportConfig().validate().bpm == 100.0
