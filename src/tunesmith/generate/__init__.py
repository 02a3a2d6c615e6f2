"""Generate stage: a trained model → new melodies (a plan, one decoding loop with per-step
controls, sampling schemes and beam search, primers, keys, constraints, regenerating bars).

Names are imported on first use, so ``tunesmith --help`` does not pay for torch.
"""

from tunesmith.lazy import lazy_exports

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
__getattr__, __all__ = lazy_exports("tunesmith.generate", _EXPORTS)
