"""WAV audio: the MIDI file rendered by the ``fluidsynth`` program with a General MIDI soundfont."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.song import Song

INSTALL_HINT = "sudo apt-get install fluidsynth fluid-soundfont-gm (macOS: brew install fluid-synth)"
# Where Debian, Fedora, Arch and Homebrew put a GM soundfont; $TUNESMITH_SOUNDFONT comes first.
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)


class AudioUnavailable(TunesmithError):
    """fluidsynth or a soundfont is missing; the message carries the install command."""


def find_soundfont(explicit: str = "") -> Path:
    """The soundfont to render with: ``explicit``, ``$TUNESMITH_SOUNDFONT``, then the usual places
    (a soundfont asked for by name that is not there is an error, not a fallback)."""
    if explicit and not Path(explicit).is_file():
        raise TunesmithError(f"no soundfont at {explicit!r}")
    for candidate in (explicit, os.environ.get("TUNESMITH_SOUNDFONT", ""), *SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AudioUnavailable(f"no General MIDI soundfont found for WAV output; install one: {INSTALL_HINT}")


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` program, or AudioUnavailable with the install command."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise AudioUnavailable(f"WAV output needs the fluidsynth program; install it: {INSTALL_HINT}")
    return program


def audio_available() -> bool:
    """True when both fluidsynth and a soundfont are present."""
    try:
        find_fluidsynth(), find_soundfont()
    except AudioUnavailable:
        return False
    return True


DEFAULT_HUMANIZE = 0.3  # a gentle performance unless --humanize says otherwise


def write_wav(song: Song, path: str | Path, config) -> Path:
    """Render ``song`` to a 16-bit stereo WAV at ``config.sample_rate`` Hz, humanized by
    ``config.humanize`` (a gentle ``DEFAULT_HUMANIZE`` when unset), chords on a second instrument."""
    from tunesmith.export.midi import to_midi_file

    program, soundfont = find_fluidsynth(), find_soundfont(config.soundfont)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tunesmith-audio-") as tmp:
        midi = Path(tmp) / "melody.mid"
        amount = DEFAULT_HUMANIZE if config.humanize is None else config.humanize
        to_midi_file(song, config, amount).save(str(midi))
        command = [program, "-ni", "-q", "-g", "0.7", "-r", str(config.sample_rate), "-F", str(path), str(soundfont), str(midi)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 or not path.is_file() or path.stat().st_size <= 44:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise TunesmithError(f"fluidsynth could not render {str(path)!r}: {detail[-1] if detail else 'no output'}")
    return path
