"""Engraved score SVG: the MusicXML rendered by verovio, all systems on one page.

:func:`engrave` is the one place tunesmith calls verovio (the export and the studio's score view).
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.song import Song


def engrave(song: Song, bpm: float | None = None, width: int = 2100):
    """A verovio toolkit holding the engraved melody (``width`` in verovio page units, tenths of a mm):
    ``renderToSVG(1)`` is the score, ``renderToTimemap()`` when each note sounds.

    Safe in any thread: verovio's default resource folder is set per thread (only in the one that
    imported it), so each toolkit is given the folder of its fonts itself.
    """
    try:
        import verovio
    except ImportError:
        raise TunesmithError("writing a score SVG needs verovio: pip install verovio") from None
    from tunesmith.export.musicxml import musicxml_bytes

    toolkit = verovio.toolkit(False)
    if not toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data")):
        raise TunesmithError("verovio's fonts are missing from its installation: pip install --force-reinstall verovio")
    # One tall page that verovio shrinks to fit, so a whole melody is one SVG file.
    toolkit.setOptions({"pageWidth": width, "pageHeight": 60000, "adjustPageHeight": True, "breaks": "auto",
                        "scale": 40, "footer": "none", "header": "auto"})  # fmt: skip
    if not toolkit.loadData(musicxml_bytes(song, bpm).decode("utf-8")):
        raise TunesmithError(f"verovio could not engrave {song.title!r}")
    return toolkit


def score_svg(song: Song, bpm: float | None = None, width: int = 2100) -> str:
    """SVG text of the engraved melody (``width`` in verovio page units, tenths of a mm)."""
    return engrave(song, bpm, width).renderToSVG(1)


def write_score(song: Song, path: str | Path, config) -> Path:
    """Write the engraved score of ``song`` as SVG at ``path``."""
    path = Path(path)
    path.write_text(score_svg(song, config.bpm), encoding="utf-8")
    return path
