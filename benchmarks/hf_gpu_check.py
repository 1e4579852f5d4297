"""The two engines on one GPU: MFU, harness overhead and measured vs projected speedups.

For a bf16 full fine-tune of llama-3.2-1b at sequence length 2048 (batch 4, SDPA, fused
AdamW, no checkpointing), with each engine (``hf``: transformers + PEFT under the HF
Trainer; ``native``: pytest-goblin's own decoder), this prints:

- the measured tokens/s and MFU (against the catalogue's dense bf16 peak);
- the harness overhead: the engine's tokens/s against the same training without the
  harness (``hf``: a bare ``Trainer.train()``, as ``hf_harness_overhead.py`` runs it;
  ``native``: a hand-written loop over the same model, autocast and optimizer);
- the measured speedup of turning checkpointing off, of SDPA over eager attention and of
  fused over foreach AdamW, next to the analytic model's projection for this GPU.

Without a ROCm or CUDA GPU it says so and exits 0. Run by ``benchmarks/gpu_check.sh``;
sized to a few minutes on one H100-class GPU.

    python benchmarks/hf_gpu_check.py [--steps 10]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.engines import hf_missing
from pytest_goblin.runner.measured import TorchRunner
from pytest_goblin.runner.model import ModelOptions, build
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

WARMUP = 3
BASE = WorkloadConfig(
    name="llama-3.2-1b-full-bf16",
    model_name="llama-3.2-1b",
    batch_size=4,
    seq_len=2048,
    precision="bf16",
    attention_impl="sdpa",
    optimizer="adamw_torch_fused",
    gradient_checkpointing=False,
    packing=True,
    lr=1e-5,
)
CHANGES = {
    "checkpointing off": {"gradient_checkpointing": True},
    "sdpa vs eager": {"attention_impl": "eager"},
    "fused vs foreach AdamW": {"optimizer": "adamw_torch"},
}
"""Each speedup compares BASE with the config that undoes one change."""


def native_bare_tokens_per_s(config: WorkloadConfig, steps: int) -> float:
    """A hand-written bf16 loop over the native model: no worker, no protocol, no windows."""
    device = torch.device("cuda")
    model, _ = build(config.arch, config.seq_len, ModelOptions(attention="sdpa"), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0, fused=True)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(
        config.arch.vocab, (config.batch_size, config.seq_len + 1), generator=generator
    ).to(device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * config.batch_size * config.seq_len / (time.perf_counter() - start)


def hf_bare_tokens_per_s(config: WorkloadConfig, steps: int) -> float:
    from hf_harness_overhead import bare_tokens_per_s  # beside this script

    return bare_tokens_per_s(config, steps, torch.device("cuda"))


def check(engine: str, steps: int) -> None:
    session = DeviceSession("cpu", MeasureOptions(device="auto", warmup=WARMUP, engine=engine))
    runner = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    assert isinstance(runner, TorchRunner)
    try:
        base = runner.run(BASE, steps)
        mfu = "unknown" if base.mfu_pct is None else f"{base.mfu_pct:.1f}%"
        print(
            f"[{engine}] {runner.info.name}: {BASE.name} seq {BASE.seq_len}: "
            f"{base.tokens_per_sec:,.0f} tok/s, MFU {mfu}, peak {base.hbm_peak_gb:.1f} GB",
            flush=True,
        )
        projector = runner.projector
        projected_base = projector.run(BASE, steps).tokens_per_sec
        for label, undo in CHANGES.items():
            other = BASE.model_copy(update=undo)
            measured = base.tokens_per_sec / runner.run(other, steps).tokens_per_sec
            projected = projected_base / projector.run(other, steps).tokens_per_sec
            print(
                f"[{engine}] {label}: measured {measured:.2f}x, projected {projected:.2f}x",
                flush=True,
            )
    finally:
        session.close()
    bare = hf_bare_tokens_per_s(BASE, steps) if engine == "hf" else None
    if bare is None:
        bare = native_bare_tokens_per_s(BASE, steps)
    print(
        f"[{engine}] harness: engine {base.tokens_per_sec:,.0f} tok/s vs without harness "
        f"{bare:,.0f} tok/s = {base.tokens_per_sec / bare:.3f}x",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("hf_gpu_check: no ROCm or CUDA GPU visible to torch: skipped")
        return 0
    engines = ["native"] if hf_missing() else ["hf", "native"]
    if hf_missing():
        print(f"hf_gpu_check: the hf engine needs {', '.join(hf_missing())}: native only")
    for engine in engines:
        check(engine, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
