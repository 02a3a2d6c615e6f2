"""Piano-roll PNG with matplotlib's Agg canvas (no display, no global pyplot state)."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.song import PITCH_NAMES as _NAMES
from tunesmith.song import Song


def write_pianoroll(song: Song, path: str | Path, config) -> Path:
    """Draw the notes as bars over time (x in bars) and pitch (y), with bar lines and C labels."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise TunesmithError("writing a piano roll needs matplotlib: pip install matplotlib") from None
    from tunesmith.export.musicxml import bar_lines
    from tunesmith.song import bar_steps

    bar = bar_steps(song.meter, song.steps_per_quarter)
    pitches = [n.pitch for n in song.notes if n.pitch is not None] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    lines = bar_lines(song)
    figure = Figure(figsize=(max(6.0, min(24.0, 1.1 * len(lines))), 3.2 + 0.06 * (high - low)), dpi=config.dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    step = 0
    for note in song.notes:
        if note.pitch is not None:
            axes.broken_barh([(step / bar, note.steps / bar)], (note.pitch - 0.4, 0.8), facecolors="#3b6ea5",
                             edgecolors="#1d3a5c", linewidth=0.6)  # fmt: skip
        step += note.steps
    for line in lines:
        axes.axvline(line / bar, color="#999999", linewidth=0.7, zorder=0)
    ticks = [p for p in range(low, high + 1) if p % 12 in (0, 7) or p in (min(pitches), max(pitches))]
    axes.set_yticks(ticks, [f"{_NAMES[p % 12]}{p // 12 - 1}" for p in ticks])
    axes.set_ylim(low - 0.5, high + 0.5)
    axes.set_xlim(lines[0] / bar, lines[-1] / bar)
    axes.set_xlabel(f"bars of {song.meter}")
    key = f"{song.key.replace('-', 'b')} {song.mode}"
    axes.set_title(f"{song.title}{'' if key in song.title else ' — ' + key}, {song.meter}", fontsize=10)
    axes.grid(axis="y", color="#eeeeee", linewidth=0.5)
    figure.tight_layout()
    figure.savefig(str(path), format="png")
    return Path(path)
