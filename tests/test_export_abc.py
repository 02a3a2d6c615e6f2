"""ABC export: the text a folk musician reads, music21 reading it back, abc2midi converting it."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from synthetic_songs import timed_notes

from tunesmith.export import write
from tunesmith.song import Chord, Note, Song

FIXTURES = sorted((Path(__file__).parent / "data" / "notation").glob("*.json"))
G_MINOR_PICKUP = Song(
    notes=[Note(62, 2), Note(67, 6), Note(70, 2), Note(69, 2), Note(67, 2), Note(66, 4), Note(67, 2), Note(62, 12)],
    steps_per_quarter=4, meter="6/8", bar_starts=[2, 14, 26], mode="minor", key="G", title="Pickup",
)  # fmt: skip
WITH_CHORDS = Song(
    notes=[Note(62, 4), Note(66, 2), Note(69, 2), Note(74, 4), Note(71, 4), Note(71, 2), Note(69, 2), Note(67, 4),
           Note(69, 4), Note(64, 4), Note(62, 12)],
    meter="4/4", bar_starts=[0, 16, 32], key="D", title="With chords",
    chords=[Chord(0, 16, 2, "maj", "I", "D"), Chord(16, 8, 7, "maj", "IV", "G"), Chord(24, 8, 9, "7", "V7", "A7"),
            Chord(32, 16, 2, "maj", "I", "D")],
)  # fmt: skip


def load(path):
    data = json.loads(path.read_text())
    return Song.from_dict(data["song"]), data


def body(text):
    return [line for line in text.splitlines() if line and not (line[0].isalpha() and line[1:2] == ":")]


def read_back(text):
    from music21 import converter

    score = converter.parse(text, format="abc").stripTies()
    notes = [(n.pitch.midi, float(n.offset), float(n.quarterLength)) for n in score.flatten().notes
             if not n.isChord or n.pitches]  # fmt: skip
    meters = [m.ratioString for m in score.recurse().getElementsByClass("TimeSignature")]
    keys = [(k.tonic.name, k.mode) for k in score.recurse().getElementsByClass("Key")]
    return [n for n in notes if n[2] > 0], meters, keys


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_abc_text_of_each_key(path, tmp_path):
    song, expected = load(path)
    text = write(song, tmp_path / "tune.abc", bpm=96).read_text()
    header = dict(line.split(":", 1) for line in text.splitlines() if line[1:2] == ":")
    assert header == {"X": "1", "T": expected["song"]["title"], "C": "tunesmith", "M": song.meter, "L": "1/8",
                      "Q": "1/4=96", "K": expected["key"]}  # fmt: skip
    assert " ".join(body(text)) == expected["abc"]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_music21_reads_back_the_same_notes_meter_and_key(path, tmp_path):
    song, _ = load(path)
    notes, meters, keys = read_back(write(song, tmp_path / "tune.abc").read_text())
    assert [(p, o, q) for p, o, q in notes] == timed_notes(song)
    assert meters[0] == song.meter
    assert keys[0] == (song.key.replace("b", "-"), song.mode)


def test_pickup_and_chords(tmp_path):
    assert body(write(G_MINOR_PICKUP, tmp_path / "pickup.abc").read_text()) == ["D | G3 BAG | ^F2G D3- | D3 z3 |]"]
    notes, _, _ = read_back(write(G_MINOR_PICKUP, tmp_path / "pickup.abc").read_text())
    assert [n[0] for n in notes] == [n.pitch for n in G_MINOR_PICKUP.notes]
    text = write(WITH_CHORDS, tmp_path / "chords.abc").read_text()
    assert body(text) == ['"D"D2 FA d2 B2 | "G"BA G2 "A7"A2 E2 | "D"D6 z2 |]']


def test_triplets(tmp_path):
    song = Song(notes=[Note(67, 4), Note(69, 4), Note(71, 4), Note(72, 12), Note(74, 6), Note(72, 6), Note(71, 12)],
                steps_per_quarter=12, meter="2/4", bar_starts=[0, 24], key="G")  # fmt: skip
    text = write(song, tmp_path / "triplets.abc").read_text()
    assert body(text) == ["(3GAB c2 | dc B2 |]"]
    notes, _, _ = read_back(text)
    assert [(p, round(o, 3), round(q, 3)) for p, o, q in notes] == [(p, round(o, 3), round(q, 3)) for p, o, q in timed_notes(song)]


def test_one_line_per_phrase(tmp_path):
    song = Song(notes=[Note(62 + (i % 5), 4) for i in range(4 * 12)], meter="4/4", bar_starts=list(range(0, 192, 16)), key="D")
    assert len(body(write(song, tmp_path / "four.abc").read_text())) == 3  # every 4 bars without phrases
    song.phrase_starts = [0, 48, 108]  # phrase starts; the third has a one-beat pickup: the line breaks at its bar
    lines = body(write(song, tmp_path / "phrases.abc").read_text())
    assert [line.count("|") for line in lines] == [3, 4, 5]


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi is not installed (apt-get install abcmidi)")
@pytest.mark.parametrize("song", [WITH_CHORDS, G_MINOR_PICKUP, *[load(p)[0] for p in FIXTURES]],
                         ids=["chords", "pickup", *[p.stem for p in FIXTURES]])  # fmt: skip
def test_abc2midi_converts_without_errors_or_warnings(song, tmp_path):
    abc = write(song, tmp_path / "tune.abc")
    result = subprocess.run(["abc2midi", str(abc), "-o", str(tmp_path / "tune.mid")], capture_output=True, text=True,
                            timeout=30, check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Error" not in output and "Warning" not in output, output
    assert (tmp_path / "tune.mid").stat().st_size > 0


@pytest.mark.parametrize("key, mode, pitches, written", [
    ("C", "major", [68, 68, 69, 71], "^G2 ^G2 A2 B2"),  # G# twice: both spelt
    ("C", "major", [68, 69, 68, 67], "^G2 A2 _A2 =G2"),  # back to the key's G after the G#
    ("D", "major", [67, 65, 67, 66], "G2 ^E2 G2 F2"),  # the key's F# needs no sign
])  # fmt: skip
def test_accidentals_read_the_same_whether_a_reader_carries_them_or_not(key, mode, pitches, written, tmp_path):
    """music21 does not carry an accidental to the bar line as ABC says; every note is spelt, so it reads right."""
    song = Song(notes=[Note(p, 4) for p in pitches], meter="4/4", bar_starts=[0], key=key, mode=mode, title="Acc")
    text = write(song, tmp_path / "tune.abc").read_text()
    assert body(text) == [written + " |]"]
    notes, _, _ = read_back(text)
    assert [p for p, _, _ in notes] == pitches
