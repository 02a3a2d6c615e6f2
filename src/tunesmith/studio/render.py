"""What the page shows and downloads: the engraved score with its bar and note map, and the
exported files as bytes (written by ``tunesmith.export`` into a temporary folder removed after)."""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.generate.melody import Melody
from tunesmith.studio.engine import bar_spans

MEDIA_TYPES = {
    "mid": "audio/midi",
    "musicxml": "application/vnd.recordare.musicxml+xml",
    "abc": "text/vnd.abc; charset=utf-8",
    "wav": "audio/wav",
    "json": "application/json",
    "svg": "image/svg+xml",
}
_MEASURE = re.compile(r'<g id="([^"]+)" class="measure')


def available_formats() -> list[str]:
    """Download formats this installation can write (WAV needs fluidsynth, ABC the ABC exporter)."""
    from tunesmith.export import FORMATS
    from tunesmith.export.audio import audio_available

    suffixes = {".mid": "mid", ".musicxml": "musicxml", ".abc": "abc", ".wav": "wav", ".json": "json", ".svg": "svg"}
    names = [name for suffix, name in suffixes.items() if suffix in FORMATS]
    return [n for n in names if n != "wav" or audio_available()]


def score_view(melody: Melody, bpm: float = 100.0) -> dict[str, Any]:
    """The engraved score SVG plus, for the page, which SVG element is which bar and which note.

    ``bars``: ``{number, start, end, id}`` (steps; ``id`` of the verovio measure element);
    ``notes``: ``{id, step, start, steps, pitch}`` per engraved note or rest (``step`` = the
    time step it is drawn at, ``start``/``steps`` = the melody note it belongs to, tie parts too).
    """
    try:
        import verovio
    except ImportError:
        raise TunesmithError("the score needs verovio: pip install verovio") from None
    song = melody.song
    # verovio keeps its resource folder per thread, set only in the thread that imported it.
    verovio.setDefaultResourcePath(str(Path(verovio.__file__).parent / "data"))
    toolkit = verovio.toolkit()
    # The options of tunesmith.export.score.score_svg: one page, systems broken to fit.
    toolkit.setOptions({"pageWidth": 2100, "pageHeight": 60000, "adjustPageHeight": True, "breaks": "auto",
                        "scale": 40, "footer": "none", "header": "auto"})  # fmt: skip
    if not toolkit.loadData(engraving_xml(song, bpm)):
        raise TunesmithError(f"verovio could not engrave {song.title!r}")
    svg = toolkit.renderToSVG(1)
    measure_ids = _MEASURE.findall(svg)
    spans = bar_spans(song)
    bars = [{"number": n, "start": a, "end": b, "id": measure_ids[i] if i < len(measure_ids) else None}
            for i, (n, a, b) in enumerate(spans)]  # fmt: skip
    starts, step = [], 0
    for note in song.notes:
        starts.append((step, note.steps, note.pitch))
        step += note.steps
    notes = []
    for event in toolkit.renderToTimemap({"includeRests": True}):
        at = round(float(event.get("qstamp", 0)) * song.steps_per_quarter)
        owner = next(((a, s, p) for a, s, p in starts if a <= at < a + s), None)
        for element in [*event.get("on", []), *event.get("restsOn", [])]:
            if owner is not None:
                notes.append({"id": element, "step": at, "start": owner[0], "steps": owner[1], "pitch": owner[2]})
    return {"svg": svg, "bars": bars, "notes": notes, "steps_per_quarter": song.steps_per_quarter,
            "meter": song.meter, "key": song.key, "mode": song.mode, "title": song.title}  # fmt: skip


def engraving_xml(song, bpm: float) -> str:
    """MusicXML for verovio: the export's score with a clef and without written naturals, so
    accidentals show only where the key signature calls for them."""
    from music21 import clef
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from tunesmith.export.musicxml import to_score

    score = to_score(song, bpm)
    if importlib.util.find_spec("tunesmith.export.notation") is None:  # an export that does not spell notes
        for note in score.recurse().notes:  # writes a natural on every white-key note: music21 re-adds those needed
            if note.pitch.accidental is not None and note.pitch.accidental.name == "natural":
                note.pitch.accidental = None
    part = score.parts[0]
    measures = part.getElementsByClass("Measure")
    _add_chord_symbols(song, measures)
    pitches = [n.pitch for n in song.notes if n.pitch is not None]
    if len(measures) and not measures[0].getElementsByClass("Clef"):  # treble unless the tune lies low
        low = pitches and sum(pitches) / len(pitches) < 53
        measures[0].insert(0, clef.BassClef() if low else clef.TrebleClef())
    return GeneralObjectExporter(score).parse().decode("utf-8")


_SUFFIX = {"maj": "", "min": "m", "7": "7", "dim": "dim", "maj7": "maj7", "min7": "m7"}


def _add_chord_symbols(song, measures) -> None:
    """The song's chord symbols (``Song.chords``, from the harmony stage) above the staff, unless
    the export already wrote them."""
    from music21 import harmony

    chords = getattr(song, "chords", None) or []
    if not chords or any(m.getElementsByClass(harmony.ChordSymbol) for m in measures):
        return
    spans = bar_spans(song)
    lines = [start for _, start, _ in spans] + [spans[-1][2]]
    for chord in chords:
        index = max(i for i, line in enumerate(lines[:-1]) if line <= chord.start)
        if index >= len(measures):
            continue
        root = chord.symbol[:2] if chord.symbol[1:2] in ("#", "b") else chord.symbol[:1]
        figure = root.replace("b", "-") + _SUFFIX.get(chord.quality, "")
        try:
            symbol = harmony.ChordSymbol(figure)
        except Exception:  # music21 cannot read it: show the text as written
            symbol = harmony.ChordSymbol()
            symbol.figure = chord.symbol
        measure = measures[index]
        symbol.writeAsChord = False
        measure.insert((chord.start - lines[index]) / song.steps_per_quarter + float(measure.paddingLeft), symbol)


def filename_of(melody: Melody, fmt: str) -> str:
    """A safe download name from the title: letters, digits, dots and dashes only."""
    stem = re.sub(r"[^A-Za-z0-9.]+", "-", melody.song.title or "melody").strip("-.")[:60] or "melody"
    return f"{stem}.{fmt}"


def export_bytes(melody: Melody, fmt: str, bpm: float, program: int) -> bytes:
    """The melody as a file of format ``fmt`` (a name of MEDIA_TYPES), at ``bpm`` with ``program``."""
    from tunesmith.export import write

    if fmt not in available_formats():
        raise TunesmithError(f"format {fmt!r} is not available here; available: {', '.join(available_formats())}")
    if fmt == "svg":
        return score_view(melody, bpm)["svg"].encode("utf-8")
    melody.params.pop("export", None)  # the request's settings, never stored ones from a client
    with tempfile.TemporaryDirectory(prefix="tunesmith-studio-") as folder:
        path = write(melody, Path(folder) / f"melody.{fmt}", bpm=bpm, program=program)
        return path.read_bytes()
