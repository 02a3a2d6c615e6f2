"""Harmony stage: chord symbols for a melody, from an HMM learned on the Nottingham tunes.

Names are imported on first use, so ``tunesmith --help`` does not pay for music21.
"""

from tunesmith.lazy import lazy_exports

_EXPORTS = {
    "HarmonyConfig": "tunesmith.harmony.model",
    "HarmonyModel": "tunesmith.harmony.model",
    "default_harmony_path": "tunesmith.harmony.model",
    "load_harmony": "tunesmith.harmony.model",
    "harmonize": "tunesmith.harmony.decode",
    "harmonize_with_shipped": "tunesmith.harmony.decode",
    "read_melody": "tunesmith.harmony.decode",
    "train": "tunesmith.harmony.training",
}
__getattr__, __all__ = lazy_exports("tunesmith.harmony", _EXPORTS)
