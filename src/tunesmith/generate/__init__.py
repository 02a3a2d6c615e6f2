"""Generate stage: a trained model → new melodies (sampling schemes, primers, keys, constraints).

Names are imported on first use, so ``tunesmith --help`` does not pay for torch.
"""

import importlib

_EXPORTS = {
    "GenerationConfig": "tunesmith.generate.generator",
    "Generator": "tunesmith.generate.generator",
    "default_model_path": "tunesmith.generate.generator",
    "generate_melodies": "tunesmith.generate.generator",
    "Melody": "tunesmith.generate.melody",
    "TunesmithWarning": "tunesmith.generate.primer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunesmith.generate' has no attribute {name!r}")
