"""What the score displays: spellings, accidentals and ties in the written MusicXML and SVG.

Each fixture in tests/data/notation/ holds a Song and the notes a musician should read, written
as "F#4" (no accidental shown) or "C5 natural" (accidental shown).
"""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tunesmith.export import write
from tunesmith.export.notation import beat_steps, phrase_starts, pieces, spell
from tunesmith.song import Chord, Note, Song

FIXTURES = sorted((Path(__file__).parent / "data" / "notation").glob("*.json"))
SMUFL_ACCIDENTALS = {"E260": "flat", "E261": "natural", "E262": "sharp"}


def load(path):
    data = json.loads(path.read_text())
    return Song.from_dict(data["song"]), data


def displayed_notes(xml_text):
    """Each written note as "F#4" or "C5 natural": step/alter/octave and the <accidental> element."""
    root = ET.fromstring(xml_text)
    result = []
    for note in root.iter("note"):
        pitch = note.find("pitch")
        if pitch is None:
            continue
        alter = int(pitch.findtext("alter") or 0)
        name = pitch.findtext("step") + ("#" * alter if alter > 0 else "-" * -alter) + pitch.findtext("octave")
        accidental = note.findtext("accidental")
        result.append(f"{name} {accidental}" if accidental else name)
    return result


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_musicxml_displays_key_aware_spelling_and_accidentals(path, tmp_path):
    song, expected = load(path)
    written = write(song, tmp_path / "song.musicxml").read_text()
    assert displayed_notes(written) == expected["written"], expected["feature"]
    key = ET.fromstring(written).find(".//attributes/key")
    assert (int(key.findtext("fifths")), key.findtext("mode")) == (expected["fifths"], song.mode)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_svg_shows_exactly_the_displayed_accidentals(path, tmp_path):
    song, expected = load(path)
    svg = write(song, tmp_path / "score.svg").read_text()
    glyphs = [SMUFL_ACCIDENTALS[code] for group in re.findall(r'class="accid">(.*?)</g>', svg, re.S)
              for code in re.findall(r'href="#(E26[012])', group)]  # fmt: skip
    shown = [name.split()[1] for name in expected["written"] if " " in name]
    assert glyphs == shown


def test_demo_like_d_major_melody_has_no_stray_naturals(tmp_path):
    # The bug report: an all-D-major melody showed 25 naturals against the key signature.
    scale = [62, 64, 66, 67, 69, 71, 73, 74]
    song = Song(notes=[Note(p, 2) for p in scale + scale[::-1] + scale + scale[::-1]], meter="4/4",
                bar_starts=[0, 16, 32, 48], key="D")  # fmt: skip
    xml = write(song, tmp_path / "song.musicxml").read_text()
    assert "<accidental" not in xml
    assert "#" in "".join(displayed_notes(xml)) and all("-" not in n for n in displayed_notes(xml))


def test_spelling_rules():
    assert spell(63, "E", "minor").name == "D#4"  # raised leading tone of E minor, not E flat
    assert spell(62, "E-", "minor").name == "D4"  # and of E flat minor: D natural
    assert spell(71, "E-", "minor").name == "C-5"  # the 6th degree of E flat minor is C flat
    assert spell(77, "F#", "major").name == "E#5"
    assert spell(60, "D", "major").name == "C4"  # mixolydian 7th
    assert spell(68, "C", "major", direction=1).name == "G#4"
    assert spell(68, "C", "major", direction=-1).name == "A-4"
    assert spell(68, "F", "major").name == "A-4"  # no direction: the key's side
    assert spell(61, "F#", "major", direction=-1).name == "C#4"  # no D♭ in F♯ major: it is the 5th


def test_ties_and_beat_cuts():
    # 4/4: a note from beat 2 over the middle of the bar is tied at beat 3; a syncopated
    # half note on beat 2 is left whole; an off-beat quarter in 2/4 is tied at the beat.
    song = Song(notes=[Note(60, 4), Note(62, 12), Note(64, 4), Note(65, 8), Note(67, 4)], meter="4/4", bar_starts=[0, 16])
    first, second = pieces(song)
    assert [(p.start, p.steps, p.tie_start, p.tie_stop) for p in first] == [
        (0, 4, False, False), (4, 4, True, False), (8, 8, False, True)]  # fmt: skip
    assert [(p.start, p.steps) for p in second] == [(16, 4), (20, 8), (28, 4)]
    offbeat = Song(notes=[Note(60, 2), Note(62, 4), Note(64, 2)], meter="2/4", bar_starts=[0])
    assert [(p.steps, p.tie_start) for p in pieces(offbeat)[0]] == [(2, False), (2, True), (2, False), (2, False)]
    assert beat_steps("6/8", 4) == 6 and beat_steps("3/4", 4) == 4


def test_compound_meter_beams_by_dotted_quarter(tmp_path):
    song = Song(notes=[Note(67, 2)] * 12, meter="6/8", bar_starts=[0, 12], key="G")
    root = ET.fromstring(write(song, tmp_path / "jig.musicxml").read_text())
    beams = [note.findtext("beam") for note in root.iter("note")][:6]
    assert beams == ["begin", "continue", "end", "begin", "continue", "end"]


def test_chord_symbols_in_musicxml_and_svg(tmp_path):
    song = Song(notes=[Note(62, 8), Note(69, 8), Note(70, 8), Note(69, 8)], meter="4/4", bar_starts=[0, 16], key="D",
                mode="minor", chords=[Chord(0, 16, 2, "min", "i", "Dm"), Chord(16, 8, 10, "maj", "VI", "Bb"),
                                      Chord(24, 8, 9, "7", "V7", "A7")])  # fmt: skip
    root = ET.fromstring(write(song, tmp_path / "song.musicxml").read_text())
    harmonies = [(h.findtext("root/root-step"), h.findtext("root/root-alter"), h.findtext("kind")) for h in root.iter("harmony")]
    assert harmonies == [("D", None, "minor"), ("B", "-1", "major"), ("A", None, "dominant")]
    svg = write(song, tmp_path / "song.svg").read_text()
    assert svg.count('class="harm"') == 3


def test_phrase_starts_from_the_song_or_every_four_bars():
    song = Song(notes=[Note(60, 16)] * 9, meter="4/4", bar_starts=list(range(0, 144, 16)))
    assert phrase_starts(song) == [0, 64, 128]
    song.phrase_starts = [0, 48]  # the phrases the reader recovered (tunesmith.form)
    assert phrase_starts(song) == [0, 48]
