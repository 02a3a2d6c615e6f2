"""What the page shows and downloads: the engraved score with its bar and note map, and the
exported files as bytes (written by ``tunesmith.export`` into a temporary folder removed after)."""

from __future__ import annotations

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


MAX_WAV_MINUTES = 12  # a 128-bar 4/4 tune at 45 quarters a minute; the CLI renders any length


def available_formats() -> list[str]:
    """Download formats this server can write: all of MEDIA_TYPES, WAV only where fluidsynth and a
    General MIDI soundfont are installed."""
    from tunesmith.export.audio import audio_available

    return [name for name in MEDIA_TYPES if name != "wav" or audio_available()]


def score_view(melody: Melody, bpm: float = 100.0) -> dict[str, Any]:
    """The engraved score SVG plus, for the page, which SVG element is which bar and which note.

    ``bars``: ``{number, start, end, id}`` (steps; ``id`` of the verovio measure element);
    ``notes``: ``{id, step, start, steps, pitch}`` per engraved note or rest (``step`` = the
    time step it is drawn at, ``start``/``steps`` = the melody note it belongs to, tie parts too).
    """
    from tunesmith.export.score import engrave

    song = melody.song
    toolkit = engrave(song, bpm)
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


def filename_of(melody: Melody, fmt: str) -> str:
    """A safe download name from the title: letters, digits, dots and dashes only."""
    stem = re.sub(r"[^A-Za-z0-9.]+", "-", melody.song.title or "melody").strip("-.")[:60] or "melody"
    return f"{stem}.{fmt}"


def export_bytes(melody: Melody, fmt: str, bpm: float, program: int, humanize: float | None = None) -> bytes:
    """The melody as a file of format ``fmt`` (a name of MEDIA_TYPES), at ``bpm`` with ``program``;
    ``humanize`` 0..1 (None: the export's default, 0.3 for WAV, off for MIDI)."""
    from tunesmith.export import write

    if fmt not in available_formats():
        raise TunesmithError(f"format {fmt!r} is not available here; available: {', '.join(available_formats())}")
    if fmt == "svg":
        return score_view(melody, bpm)["svg"].encode("utf-8")
    if fmt == "wav":  # ~10 MB a minute: a server keeps each answer (and its memory) bounded
        minutes = melody.song.total_steps / melody.song.steps_per_quarter / bpm
        if minutes > MAX_WAV_MINUTES:
            raise TunesmithError(f"bpm: at {bpm:g} quarters a minute the WAV would last {minutes:.0f} minutes; the "
                                 f"studio renders {MAX_WAV_MINUTES} at most (play it faster or export MIDI)")  # fmt: skip
    melody.params.pop("export", None)  # the request's settings, never stored ones from a client
    with tempfile.TemporaryDirectory(prefix="tunesmith-studio-") as folder:
        path = write(melody, Path(folder) / f"melody.{fmt}", bpm=bpm, program=program, humanize=humanize)
        return path.read_bytes()
