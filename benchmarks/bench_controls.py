"""What each per-step control costs: 64 melodies of 16 bars with and without the drawn form and
the originality guard (shipped model, 2 threads, best of 3). Run: .venv/bin/python benchmarks/bench_controls.py"""

import time, torch
from tunesmith.generate import Generator, GenerationConfig
torch.set_num_threads(2)
g = Generator.from_checkpoint(None, device="cpu")
def rate(**kw):
    best = 0
    for r in range(3):
        t = time.perf_counter(); ms = g.generate(num=64, bars=16, seed=r, full_length=True, **kw); dt = time.perf_counter() - t
        steps = sum(len(m.tokens) for m in ms); best = max(best, steps / dt)
    return best
for kw in [dict(form="none", max_copy=0), dict(form="none"), dict(max_copy=0), dict()]:
    print(kw, f"{rate(**kw):,.0f} steps/s")
