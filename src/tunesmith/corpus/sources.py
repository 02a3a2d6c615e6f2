"""Where songs come from: files, folders (recursive) and corpora bundled with music21.

Bundled names need no download: music21 ships the Essen Folksong Collection as ABC files.
``essen/erk`` is ``essenFolksong/erk*.abc`` (1,781 German tunes); ``essen/<stem>`` names one
file; ``essen/german`` is every German ("deutschl") collection.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import TunesmithError

# Suffix → music21 format name.
FORMATS = {
    ".krn": "humdrum", ".kern": "humdrum", ".abc": "abc",
    ".xml": "musicxml", ".musicxml": "musicxml", ".mxl": "musicxml",
    ".mid": "midi", ".midi": "midi",
}  # fmt: skip
GERMAN = ("altdeu", "ballad", "boehme", "dva", "erk", "fink", "kinder", "variant", "zuccal")
_TUNE_START = re.compile(r"^X:", re.MULTILINE)


@dataclass(frozen=True)
class SourceFile:
    """One file to read, with the label it is reported under (bundled name or path)."""

    path: Path
    label: str


def essen_folder() -> Path:
    """music21's bundled Essen folder, found without importing music21 (that costs ~1 s)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise TunesmithError("music21 is not installed: pip install music21")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus" / "essenFolksong"


def bundled_corpora() -> dict[str, list[Path]]:
    """Every bundled corpus name and its files, sorted by name."""
    files = sorted(essen_folder().glob("*.abc"))
    names: dict[str, list[Path]] = {
        "essen/erk": [f for f in files if f.stem.startswith("erk")],
        "essen/german": [f for f in files if f.stem.rstrip("0123456789").startswith(GERMAN)],
    }
    for f in files:
        names[f"essen/{f.stem}"] = [f]
    return dict(sorted(names.items()))


def count_tunes(path: Path) -> int:
    """Tunes in an ABC file (one per ``X:`` field), 1 for any other file."""
    if path.suffix.lower() != ".abc":
        return 1
    return len(_TUNE_START.findall(path.read_text(encoding="utf-8", errors="replace")))


def resolve_sources(specs: list[str]) -> list[SourceFile]:
    """Expand each spec (file, folder, bundled name) into files, in a stable order.

    Folders are searched recursively; hidden files are ignored; files of other types are kept so
    the reader can report them as unsupported. Raises TunesmithError for a spec that is neither.
    """
    result: list[SourceFile] = []
    seen: set[Path] = set()
    bundled = None
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )  # fmt: skip
        else:
            bundled = bundled if bundled is not None else bundled_corpora()
            if spec not in bundled:
                raise TunesmithError(
                    f"no such file, folder or bundled corpus: {spec!r}; bundled: essen/erk, essen/german, "
                    f"essen/<file> ({', '.join(n for n in bundled if n not in ('essen/erk', 'essen/german'))})"
                )
            found = bundled[spec]
        for f in found:
            resolved = f.resolve()
            if resolved not in seen:
                seen.add(resolved)
                label = f"{spec}:{f.name}" if spec in (bundled or {}) else str(f)
                result.append(SourceFile(f, label))
    return result
