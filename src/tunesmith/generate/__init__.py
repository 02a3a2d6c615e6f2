"""Generate stage: a trained model → new melodies (a plan, one decoding loop with per-step
controls, sampling schemes and beam search, primers, keys, constraints, regenerating bars).

Names are imported on first use, so ``tunesmith --help`` does not pay for torch.
"""

import importlib

_EXPORTS = {
    "GenerationConfig": "tunesmith.generate.config",
    "Control": "tunesmith.generate.controls",
    "StepContext": "tunesmith.generate.controls",
    "Plan": "tunesmith.generate.plan",
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
