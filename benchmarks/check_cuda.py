"""Device check (a machine with a GPU): the shipped model samples on CUDA, and its CUDA logits match the CPU's.

Run: python benchmarks/check_cuda.py [cuda|mps|cpu]   (from the repository root; music21 is not needed)
"""
import sys
import time

sys.path.insert(0, "src")
sys.modules.setdefault("music21", None)  # not installed there: nothing below may need it
import torch  # noqa: E402

from tunesmith.generate import GenerationConfig, Generator  # noqa: E402

device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
print("torch", torch.__version__, "device", device, torch.cuda.get_device_name(0) if device == "cuda" else "")
cpu, dev = Generator.from_checkpoint(None, "cpu"), Generator.from_checkpoint(None, device)
# teacher-forced logits of one sequence on both devices, every path: forward, step, encode
model_c, model_d = cpu.model, dev.model
g = torch.Generator().manual_seed(0)
tokens = torch.randint(5, 40, (3, 64), generator=g)
tokens[:, 0] = 1
positions = (torch.arange(64) % 12).expand(3, 64).clone()
mode, meter = torch.tensor([1, 2, 1]), torch.tensor([9, 5, 12])
form = torch.zeros(3, 64, 5, dtype=torch.long)
form[0, :, 0], form[0, :, 1], form[0, :, 2] = 5, 2, 3
form[0, 20:, 3] = tokens[0, :44]
with torch.no_grad():
    whole_c, _ = model_c(tokens, positions, mode, meter, form=form)
    to = lambda t: t.to(device)  # noqa: E731
    whole_d, _ = model_d(to(tokens), to(positions), to(mode), to(meter), form=to(form))
    state, stepped = None, []
    for t in range(64):
        logits, state = model_d.step(to(tokens[:, t]), to(positions[:, t]), to(mode), to(meter), state, form=to(form[:, t]))
        stepped.append(logits)
    enc, _ = model_d.encode(to(tokens), [64, 40, 17], to(positions), to(mode), to(meter), form=to(form))
print("forward cuda vs cpu max |diff|", float((whole_d.cpu() - whole_c).abs().max()))
print("step vs forward on device max |diff|", float((torch.stack(stepped, 1) - whole_d).abs().max()))
print("encode vs forward on device max |diff|",
      max(float((enc[r] - whole_d[r, n - 1]).abs().max()) for r, n in enumerate([64, 40, 17])))
start = time.perf_counter()
melodies = dev.generate(GenerationConfig(num=4, seed=0))
print(f"generated {len(melodies)} melodies on {device} in {time.perf_counter() - start:.2f} s:",
      [len(m.tokens) for m in melodies], melodies[0].form if hasattr(melodies[0], "form") else "")
one = dev.generate(GenerationConfig(seed=1, bars=16))[0]
print("one melody:", " ".join(one.tokens[:24]), "…")
print("its critic's choice:", {k: one.params.get(k) for k in ("candidates", "candidate", "critic", "form")})
# requests of different lengths and meters share one pass there too, each the melody it is alone
from tunesmith.generate.batch import generate_batch  # noqa: E402

configs = [GenerationConfig(seed=s, bars=4 + s, meter=("4/4", "3/4", "6/8")[s % 3], candidates=1) for s in range(6)]
together = [m[0].tokens for m in generate_batch(dev, configs)]
alone = [dev.generate(c)[0].tokens for c in configs]
print(f"batched as alone on {device}: {sum(a == b for a, b in zip(together, alone))} of {len(configs)}")
# the shared loop's stepper (context in NumPy, index copied to the device) against the model's own step there
import numpy as np  # noqa: E402

from tunesmith.stepper import BatchStepper  # noqa: E402

with torch.no_grad():
    _, state = model_d.encode(to(tokens[:, :20]), [20, 20, 20], to(positions[:, :20]), to(mode), to(meter),
                              form=to(form[:, :20]))  # fmt: skip
    stepper = BatchStepper(model_d, state, mode.numpy(), meter.numpy(), torch.device(device))
    worst, same = 0.0, 0
    for t in range(20, 63):
        expected, state = model_d.step(to(tokens[:, t]), to(positions[:, t + 1]), to(mode), to(meter), state,
                                       form=to(form[:, t + 1]))  # fmt: skip
        got = stepper.step(tokens[:, t].numpy(), positions[:, t + 1].numpy(), form[:, t + 1].numpy())
        worst, same = max(worst, float((got - expected).abs().max())), same + bool(torch.equal(got, expected))
print(f"batch stepper vs model step on {device}: max |diff| {worst}, {same} of 43 steps identical")
