"""Engraved score SVG: the MusicXML rendered by verovio, all systems on one page."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.song import Song


def score_svg(song: Song, bpm: float | None = None, width: int = 2100) -> str:
    """SVG text of the engraved melody (``width`` in verovio page units, tenths of a mm)."""
    try:
        import verovio
    except ImportError:
        raise TunesmithError("writing a score SVG needs verovio: pip install verovio") from None
    from tunesmith.export.musicxml import musicxml_bytes

    toolkit = verovio.toolkit()
    # One tall page that verovio shrinks to fit, so a whole melody is one SVG file.
    toolkit.setOptions({"pageWidth": width, "pageHeight": 60000, "adjustPageHeight": True, "breaks": "auto",
                        "scale": 40, "footer": "none", "header": "auto"})  # fmt: skip
    if not toolkit.loadData(musicxml_bytes(song, bpm).decode("utf-8")):
        raise TunesmithError(f"verovio could not engrave {song.title!r}")
    return toolkit.renderToSVG(1)


def write_score(song: Song, path: str | Path, config) -> Path:
    """Write the engraved score of ``song`` as SVG at ``path``."""
    path = Path(path)
    path.write_text(score_svg(song, config.bpm), encoding="utf-8")
    return path
