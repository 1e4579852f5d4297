#!/usr/bin/env bash
# GPU checks of pytest-goblin's measured path, for one ROCm or CUDA GPU.
# Run from the repository root with the package installed (pip install -e '.[torch]').
# Each section is independent; OUT (default: the temp directory) collects their files.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-${TMPDIR:-/tmp}}"
export OUT
status=0

# --- Section: measured-run validation (issue 20) --------------------------------------
# Identity and peak vs a bf16 GEMM; GPUs counted (render nodes, APUs), package lock, NUMA
# CPUs, lock directory, bitsandbytes build; the kernel per attention setting (SDPA backend
# or flash-attn) and its timings; graph breaks; window 0 vs median; drift over 6 runs with
# clocks/power/temperature; prefetch backlog; allocated/reserved/device peaks and what a
# compiled run leaves; fp16 skipped steps; TunableOp file placement.
# Under 8 minutes on one GPU; figures in $OUT/gpu_validate.json. Says "skipped" and exits 0
# without a GPU.
echo "== measured-run validation"
timeout 470 python benchmarks/gpu_validate.py || status=$?
python -m pytest -q -m gpu tests/unit/runner/test_torch_gpu.py tests/unit/runner/test_flash_attn.py \
    tests/unit/runner/test_gpu_topology.py || status=$?
# --- end of section: measured-run validation --------------------------------------------

# --- Section: engines (issue 17) --------------------------------------------------------
# bf16 llama-3.2-1b full fine-tune at seq 2048 with each engine (hf, native): MFU, harness
# overhead, measured speedups of checkpointing off / sdpa vs eager / fused AdamW beside the
# analytic model's projection; then the hf engine's gpu-marked tests. Prints "skipped"
# without a GPU.
echo "== engines"
timeout 420 python benchmarks/hf_gpu_check.py || status=$?
python -m pytest -q -m gpu tests/unit/runner/test_hf_engine.py || status=$?
# --- end of section: engines ------------------------------------------------------------

# --- Section: multi-rank (issue 19) ----------------------------------------------------
# With two or more GPUs: 2 NCCL/RCCL ranks launched by torch's elastic launcher through the
# device worker, DDP and FSDP2 (per-rank peak memory, exposed-communication share), the
# same through the hf engine (the Trainer's DDP and FSDP2 in each rank), then a 2-rank DDP
# and FSDP llama-3.2-1b workload through pytest --goblin, JSON figures printed.
# Under 11 minutes; prints "skipped" with fewer than two GPUs.
echo "== multi-rank"
gpus=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "${gpus:-0}" -ge 2 ]; then
    timeout 200 python -m pytest -q -m gpu -k nccl tests/unit/runner/test_distributed.py \
        || status=$?
    timeout 180 python -m pytest -q -m gpu -k nccl tests/unit/runner/test_hf_ranks.py \
        || status=$?
    ranks="$OUT/multi-rank"
    mkdir -p "$ranks/w"
    for strategy in ddp fsdp; do
        printf '%s\n' "name: llama-1b-$strategy" "model: llama-3.2-1b" "precision: bf16" \
            "batch_size: 4" "seq_len: 2048" "optimizer: adamw_torch_fused" "world_size: 2" \
            "strategy: $strategy" > "$ranks/w/llama-1b-$strategy.goblin.yaml"
    done
    timeout 280 python -m pytest --goblin --goblin-engine native --goblin-steps 10 \
        --goblin-max-repeats 2 --goblin-json "$ranks/r.json" -p no:cacheprovider "$ranks/w" \
        || status=$?
    python -c "
import json, sys
for w in json.load(open(sys.argv[1]))['workloads']:
    b = w['baseline'] or {}
    print(w['name'], w['outcome'], b.get('tokens_per_sec'), b.get('comm_share'),
          b.get('rank_peak_memory_gb'))
" "$ranks/r.json" || status=$?
else
    echo "skipped: ${gpus:-0} GPU(s) visible; the multi-rank checks need 2"
fi
# --- end of section: multi-rank ---------------------------------------------------------

exit "$status"
