"""The analytic model of one optimizer step on a catalogued device.

Nothing runs: FLOPs and bytes per step are counted from the config and the
architecture, and turned into seconds with the device's published peaks
(``devices.py``) and the efficiency constants below. Every number it returns
is *projected* (``RunMetrics.projected``), is deterministic, and must never be
compared with a measured one.

Step time (one rank; ranks run in parallel)::

    step = grad_accum x (device + host_gap + data_wait)   per micro-batch
         + optimizer + all-reduce + per-step host overhead

Device time per micro-batch
    * Linear GEMMs. FLOPs per token: ``6N`` for full fine-tuning (2N forward,
      2N activation-grad, 2N weight-grad); LoRA/QLoRA ``4N`` (frozen weights
      get no weight-grad GEMM) plus ``6 r (in+out)`` per targeted linear per
      layer for the adapters. ``N = ModelArch.matmul_params`` (PaLM App. B,
      https://arxiv.org/abs/2204.02311; torchtitan excludes the input
      embedding). Gradient checkpointing re-runs every decoder layer's forward:
      ``2 x`` the decoder-layer parameters (the LM head sits outside the
      checkpointed blocks) plus the adapters' forward.
      Seconds = FLOPs / (peak[precision] x efficiency).
    * Attention. ``12 L H Q T`` FLOPs per token (PaLM App. B: QK^T and AV, 2
      FLOPs per MAC, x3 for forward and backward; H query heads, Q head dim,
      T sequence). Fused kernels (flash, SDPA) run them at a kernel efficiency;
      eager attention runs them as batched GEMMs at a lower one *and*
      materialises the ``b x H x T x T`` score matrix in HBM, read and
      written ``EAGER_SCORE_PASSES_FWD`` times in the forward and
      ``EAGER_SCORE_PASSES_BWD`` times in the backward, at the device
      bandwidth. Checkpointing re-runs the forward third.
    * QLoRA dequantises the 4-bit base weights to 16-bit once per forward and
      per backward of every micro-batch (memory traffic).
    * Activation offloading copies what every layer keeps for the backward to the host
      and back (2 x those bytes per micro-batch) at ``PINNED_H2D_GBS``, on a second
      stream beside the compute: the micro-batch takes the longer of the two, the excess
      counted as memory_headroom. Where the offloading context wraps the whole training
      step (TRL's and axolotl's, ``OFFLOADS_LOSS``), the loss's saved tensors go to the host
      too, a copy the backward's first node waits for: added in series.
    * LoRA over an 8-bit base (``lora8``: bitsandbytes ``Linear8bitLt``, LLM.int8(),
      https://arxiv.org/abs/2208.07339) runs each decoder-layer linear as
      ``MatMul8bitLt`` does (bitsandbytes 0.50.2.dev0
      ``bitsandbytes/autograd/_functions.py``, ``backends/cuda/ops.py``). Forward:
      the 16-bit input is cast to fp16 (unless it is fp16), scanned for outlier
      columns at ``llm_int8_threshold`` (6.0, transformers v5.25.0
      ``BitsAndBytesConfig``), row-wise quantised to int8, multiplied with the int8
      weight into an int32 output, dequantised to fp16 and cast back:
      ``INT8_INPUT_BYTES`` per input and ``INT8_OUTPUT_BYTES`` per output element of
      traffic, and the ``2N_layers`` FLOPs as int8 GEMMs at ``INT8_PEAK_RATIO`` x the
      16-bit peak. Backward: the input gradient is a 16-bit GEMM over the weight
      dequantised afresh every backward (``CB.to(dtype).mul_(SCB / 127)``:
      ``1 + 3e`` bytes per weight, ``e`` the compute element size); the frozen
      weight gets no gradient. Checkpointing re-runs the int8 forward. No published
      measurement of LLM.int8() training speed exists to fit to, so only the
      mechanism's FLOPs and bytes are priced, at the model's ordinary efficiencies:
      a lower bound on its cost (not counted: the outlier columns' 16-bit matmul and
      its output copy, which depend on the data, and the host syncs of the outlier
      scan).

DPO (``objective: dpo``) runs each example's chosen and rejected sequences as one
batch of ``2 x batch_size`` (TRL's ``concatenated_forward``): time, activations and
logits are those of that batch. A reference that is a frozen copy or the model with
its adapter disabled adds a forward per micro-batch (2N FLOPs per token, a third of
the attention); a copy also holds its weights (see Memory). Precomputed or no
reference log-probs cost nothing per step.

Efficiency of a GEMM = ``GEMM_EFFICIENCY`` x platform factor x width factor x
fill factor (x ``COMPILE_SPEEDUP`` with torch.compile). The fill factor
``min(1, tokens/SATURATION_TOKENS) ** UNDERFILL_EXPONENT`` models micro-batches
too small to fill the device; the width factor does the same for narrow models.

Precision picks the peak: bf16/fp16 the 16-bit matrix rate; fp32 the FP32 rate
(matrix cores idle for 16-bit: the big FP32 penalty), reached at ``FP32_KERNEL_GAIN``
times the 16-bit efficiency; tf32 the TF32 rate where
PyTorch uses it (not on ROCm, where ``allow_tf32`` is not honoured by default:
modelled as fp32 with a warning); fp8 the FP8 rate for the linear GEMMs where
the device has one, at ``FP8_GEMM_RATIO`` of the bf16 efficiency (attention stays
bf16), else bf16 with a warning. fp16 GEMMs on Instinct run at
``FP16_ROCM_GEMM_RATIO`` of bf16 ones.

Host side
    * Data: each sample costs ``DATA_SAMPLE_BASE_S + DATA_SAMPLE_PER_1K_TOKENS_S
      x T/1024`` of collate work on the host. With ``dataloader_workers == 0``
      it is serialised with the step; with W workers it overlaps and stalls
      only by ``max(0, load/W - compute)``. The host-to-device copy of the
      batch is serialised; pageable (unpinned) memory copies it slower.
    * Dispatch: eager PyTorch spends ``OP_DISPATCH_S`` of host time per op. A
      GPU runs asynchronously but waits for the launch-bound share
      (``LAUNCH_BOUND_DISPATCH_SHARE``: small kernels finish before the next is
      issued), and for the rest only where it exceeds the device time; a CPU
      device runs ops synchronously, so all of it is lost.
    * ``HOST_STEP_OVERHEAD_S`` per optimizer step (loss ``.item()`` sync,
      scheduler, ``zero_grad``, logging).

Optimizer: bytes moved per trainable parameter over the device bandwidth
(``OPTIMIZERS``); an optimizer offloaded to the host (``offload_optimizer``, FSDP's
``offload_params``) costs no device time, and its host step is *not priced* (no
sourced absolute rate for DeepSpeed's CPU-Adam: its docs give only "5X--7X faster than
the standard PyTorch implementation"; a projected run says so in its warnings).
Multi-device: a ring all-reduce of the gradients, fp32 beside AMP's master weights and
16-bit for a model trained in its compute dtype (``2 (n-1)/n`` x gradient bytes) over ``INTERCONNECT_GBS``, not overlapped with
compute, plus a fixed latency per collective (``COLLECTIVE_*_LATENCY_S``) for each of
DDP's gradient buckets (``ddp_buckets``: ``bucket_cap_mb``, 25 MiB unset), once per
optimizer step (the HF Trainer accumulates under DDP's ``no_sync``); DDP with
``find_unused_parameters`` also walks the forward's autograd graph on the host
(``FIND_UNUSED_NODE_S`` per node) and all-reduces a map of the used parameters. The
overlap it costs (its buckets keep the registration order instead of the backward's)
is not charged: no collective is modelled as overlapped. FSDP / DeepSpeed instead
all-gather the parameters and reduce-scatter the fp32 trainable gradients, each
``(n-1)/n`` x bytes with a collective's latency per block, as often per optimizer step
as ``sharded_collectives`` counts them: FULL_SHARD / ZeRO-3 gather every parameter,
the frozen base of a (Q)LoRA run included in its stored dtype, in the forward and the
backward of *every micro-batch* (SHARD_GRAD_OP: once per micro-batch under FSDP2, once
per step under FSDP1's ``no_sync``), and DPO's sharded reference copy once more per
micro-batch (``reference_gathers``); the gradients are reduced once per step by FSDP under
the HF Trainer / accelerate, every micro-batch by ZeRO-2/3, in DeepSpeed's
``communication_data_type`` where its config sets one. Model states are sharded
``n`` ways as the ZeRO stage says (see Memory). Offload adds its PCIe copies at
``PINNED_H2D_GBS`` (``offload_copy_bytes``).

Waste budget: seconds per step, peeled off counterfactually (each step is
clamped so that no bucket is negative, and all buckets sum to the step):

    precision_path   actual precision vs bf16 (same attention kernel)
    kernel_shape     attention kernel vs the device's best; foreach vs fused AdamW
    memory_headroom  time spent saving memory: checkpoint recompute, QLoRA
                     dequantisation, micro-batches below saturation
    data_wait, host_gap, comm_excess   as above
    useful_gpu       what is left: the work at its best on this device

MFU = tokens/s per device x model FLOPs per token / dense bf16 peak, with model
FLOPs = the linear FLOPs above (trainable-aware: 4N + adapters for LoRA) plus
attention, *without* recompute (the PaLM / Megatron MFU definition; HFU would
count recompute). It is quoted against the bf16 peak whatever the precision,
so fp32 and bf16 runs of one workload compare on one scale.

Memory (decimal GB)
    * weights: trainable weights are fp32 master weights under AMP (its per-op
      16-bit autocast copies are transient and ignored), or 16-bit for a model
      loaded and trained in its compute dtype (``pure_precision``). LoRA keeps
      the frozen base in the compute dtype (2 B/param for 16-bit, 4 for fp32)
      and adapters like trainable weights; QLoRA keeps decoder-layer linears in
      4 bits (0.5 B/param; quantisation constants ignored) and embeddings, LM
      head and norms in 16 bits. ``lora8`` keeps them in int8 (1 B/param) plus
      one fp32 scale per output row (``Int8Params.SCB``, bitsandbytes 0.50.2.dev0
      ``bitsandbytes/nn/modules.py``), the rest in 16 bits like QLoRA.
    * gradients: trainable parameters only, in the weights' dtype; with the optimizer
      stepped inside the backward (``optimizer_in_backward``, torchtune's
      ``optimizer_in_bwd``) only the largest one, as each is freed once its parameter
      has stepped.
    * optimizer state: ``OPTIMIZERS[...].state_bytes`` per trainable parameter
      in fp32, halved for a torch optimizer over 16-bit weights. DeepSpeed in
      16 bits holds 16-bit weights and gradients and adds the fp32 master copy
      to the optimizer state.
    * DPO's reference copy: the model's weights again in the compute dtype (a
      (Q)LoRA run's frozen base), split like the weights.
    * sharding and offload (``strategy`` fsdp/deepspeed): ZeRO stage 1 divides
      the optimizer state by ``world_size``, 2 also the gradients, 3 also the
      weights, plus two gathered layers; offloaded states cost no device memory.
    * activations (Korthikanti et al. 2022, https://arxiv.org/abs/2205.05198):
      ``s b h (34 + 5 a s / h)`` bytes per layer in 16 bits; fused attention
      drops the ``5 a s / h`` score-matrix term; fp32 doubles it; full
      checkpointing keeps ``2 s b h`` per layer plus one layer's full set. The
      formula is for a GPT block (it counts dropout masks a Llama block lacks);
      LoRA is modelled with the full set (an upper bound). Plus the logits
      (``LOGITS_BYTES_PER_ELEMENT`` per token per vocabulary entry), or what a loss
      kernel the run already uses keeps instead (``_logits_bytes``): a fused linear
      cross-entropy (Liger, CutCrossEntropy) none, torchtune's chunked losses the
      fp32 log-probabilities plus one chunk, TRL's ``chunked_nll`` two hidden-sized
      copies, one chunk and its copies of the ``lm_head`` weight. Activation offloading
      (``activation_offloading``) sends what the layers keep to pinned host memory: the
      device holds one layer's full set and, with checkpointing, the last
      ``OFFLOAD_FORWARD_STASHES`` layer inputs (by implementation); the logits stay.
    * ``WORKSPACE_GB`` for the runtime context, GEMM workspaces and allocator slack.

Calibration: the constants are fitted to the published measurements in
``calibration_points.yaml`` (``accuracy.py`` projects them; a test pins each
projection). A ``DeviceCorrection`` fitted to one device's measured runs
(``self_calibration.py``) scales the mechanisms for that device; the numbers stay
projected.

Not modelled: padding (every sample is assumed to fill ``seq_len``, as packed
or synthetic data does), dataloader prefetch depth and worker restarts, the
first-step cost of torch.compile (warmup is excluded from benchmarks anyway).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from pytest_goblin.catalogue.architectures import ModelArch
from pytest_goblin.catalogue.devices import DeviceSpec
from pytest_goblin.catalogue.optimizer_names import OPTIMIZER_ALIASES
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.schemas import RunMetrics, WasteBudget, WorkloadConfig

# --- GEMM efficiency -----------------------------------------------------------------

GEMM_EFFICIENCY = 0.6
"""Achieved fraction of peak for big linear GEMMs in eager PyTorch, non-GEMM ops
included. Fitted to the A100 rows of ``calibration_points.yaml``: torchtitan's FSDP
runs at 51-61% MFU (Llama 3 8B/70B, Llama 2 13B/70B on 64 A100s) and the Qwen README's
single-A100 LoRA runs at 1024-8192 tokens; 0.6 puts their median error near zero.
torchtitan's H100 table (33-39% MFU) is not used: its H100s ran at 500 W with an
unknown peak (see the table's note)."""

FP32_KERNEL_GAIN = 1.6
"""fp32 kernels reach this many times the fraction of *their* peak that 16-bit ones do
(capped by ``MAX_EFFICIENCY``) on devices whose 16-bit rate is above the fp32 one: an fp32 GEMM is far easier to feed than a matrix-core
one. PyTorch's CUDA notes time a 10240x10240 fp32 matmul on an A100 at 0.11 s, i.e.
19.5 TFLOP/s, the full FP32 peak, where 16-bit training reaches ``GEMM_EFFICIENCY``
of its peak (https://docs.pytorch.org/docs/stable/notes/cuda.html#tensorfloat-32-tf32-on-ampere-and-later-devices).
Checked against the PyTorch AMP blog's end-to-end mixed-precision gains, 1.5-5.5x on a
V100 whose peak ratio is 8x, i.e. 19-69% of the peak ratio
(https://pytorch.org/blog/accelerating-training-on-nvidia-gpus-with-pytorch-automatic-mixed-precision/):
with 1.5 the model projects fp32 -> bf16 on every catalogue GPU inside that fraction
(``docs/analytic-model.md`` has the table); without it, at 92-96%."""

PLATFORM_EFFICIENCY: dict[str, float] = {
    "cuda": 1.0,
    # Derived from MLPerf Training v5.0 Llama-2-70B LoRA: similar time-to-train with
    # 1.32x the nominal peak implies ~0.75x the H100's MFU
    # (https://rocm.blogs.amd.com/artificial-intelligence/mlperf-training-v5.0/README.html).
    "rocm-instinct": 0.75,
    # Calibrated: consumer RDNA3 runs rocBLAS by default and its kernels are less tuned.
    "rocm-radeon": 0.6,
    # Calibrated: the CPU peak is a placeholder; oneDNN GEMMs reach well under peak.
    "cpu": 0.6,
}
"""Scales every kernel efficiency by how close each software stack gets to its peak."""

SATURATION_TOKENS: dict[str, int] = {"rocm": 8192, "cuda": 8192, "cpu": 1024}
"""Tokens per micro-batch from which GEMMs fill the device (calibrated: 8k tokens x
4k hidden GEMMs keep every CU/SM of an MI300X/H100 busy; a CPU saturates far earlier)."""

SATURATION_HIDDEN: dict[str, int] = {"rocm": 4096, "cuda": 4096, "cpu": 1024}
"""Model width from which GEMM tiles fill the device (calibrated, same reasoning)."""

UNDERFILL_EXPONENT = 0.17
"""How steeply efficiency falls below saturation: half the tokens -> 0.89x. Fitted to
the Qwen README's Qwen-7B LoRA on one A100: tokens/s at 4096 over 1024 tokens per
micro-batch is 1.11x while the FLOPs per token grow 14% (attention), so the fill
gains 1.27x over 4x the tokens: 4 ** 0.17 = 1.27 (the model used 0.3, i.e. 1.52x)."""

COMPILE_SPEEDUP = 1.15
"""torch.compile fuses the non-GEMM ops around the GEMMs: torchtitan Llama-3.1-8B
5,762 -> 6,667 tok/s/GPU (+15.7%); applied to the linear-GEMM efficiency."""

MAX_EFFICIENCY = 0.9
"""No kernel exceeds this fraction of peak, whatever factors multiply up."""

FP8_GEMM_RATIO = 0.7
"""FP8 GEMMs reach this fraction of the efficiency of bf16 ones (scaling, casts,
amax bookkeeping). Calibrated so that Float8 linears give torchtitan's Llama-3.1-8B
step +28% (6,667 -> 8,532 tok/s/GPU) with attention left in bf16."""

FP16_ROCM_GEMM_RATIO = 0.95
"""fp16 GEMMs relative to bf16 on Instinct: AMD notes bf16 matrix-core execution is
noticeably faster than f16 in Composable Kernel GEMMs
(https://rocm.docs.amd.com/en/latest/how-to/rocm-for-ai/inference-optimization/workload.html);
no figure is published, the 5% is calibrated."""

# --- attention -------------------------------------------------------------------------

ATTENTION_EFFICIENCY: dict[str, float] = {
    # Calibrated: FA2 / CK flash kernels, fwd+bwd, counted with the 12LHQT convention.
    "flash": 0.45,
    # Calibrated: PyTorch SDPA dispatches to flash / memory-efficient backends
    # (AOTriton on ROCm), a little behind the dedicated FA2 build on GPUs.
    "sdpa": 0.40,
    # Calibrated: eager QK^T and AV are batched GEMMs with K = head_dim, poorly shaped.
    "math": 0.30,
}
"""Kernel efficiency of the attention FLOPs, before the platform factor."""

EAGER_SCORE_PASSES_FWD = 4
"""Eager forward touches the score matrix ~4 times: write QK^T, read it for the
masked softmax, write the probabilities, read them for AV."""

EAGER_SCORE_PASSES_BWD = 8
"""Eager backward ~8 times: read probabilities for dV and for the softmax backward,
read/write dP, write/read dS, and the mask and scale pointwise ops between them."""

BANDWIDTH_EFFICIENCY = 0.8
"""Achieved fraction of peak memory bandwidth for streaming kernels (calibrated;
STREAM-like copies reach 80-90% of HBM peak)."""

RADEON_SDPA_ENV = "TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL"
"""On gfx110x SDPA silently falls back to the MATH backend unless this is "1"
(https://github.com/pytorch/pytorch/pull/134498)."""

# --- memory ----------------------------------------------------------------------------

KORTHIKANTI_LINEAR_BYTES = 34
"""Activation bytes per layer per (token x hidden) in 16 bits (Korthikanti et al. 2022)."""

KORTHIKANTI_SCORE_BYTES = 5
"""Activation bytes per layer per (token x heads x seq / hidden): the score matrix."""

CHECKPOINT_BYTES = 2
"""Bytes per layer per (token x hidden) kept with full checkpointing: the layer input."""

LOGITS_BYTES_PER_ELEMENT = 8
"""Logits per token per vocabulary entry: HF causal-LM heads upcast logits to fp32
(4 B) and cross-entropy keeps its fp32 log-softmax for the backward (4 B)."""

LOG_PROBS_BYTES_PER_ELEMENT = 4
"""What torchtune's chunked losses keep of the logits per token per vocabulary entry
until the backward: each chunk's fp32 log-softmax, saved by ``F.cross_entropy`` (its
``log_softmax`` and ``nll_loss`` backwards read it), for every chunk, since the chunks
run in a plain loop (torchtune bd2a0fc7 ``torchtune/modules/loss/cross_entropy_loss.py``
``LinearCrossEntropyLoss.forward``/``compute_cross_entropy``: ``logits =
self.linear_projection(hidden_chunk)``, ``F.cross_entropy(logits.float(), ...)``; and
``ce_chunked_output_loss.py`` ``CEWithChunkedOutputLoss``). A compiled loss (recipes call
``training.compile_loss`` under ``compile``) may keep less; not modelled, so this is an
upper bound there."""

CHUNK_TRANSIENT_BYTES_PER_ELEMENT = 8
"""One chunk's transient per token per vocabulary entry at the peak of a chunked loss:
the backward's fp32 gradients of the chunk's log-probabilities and of its upcast logits
(the forward's 16-bit projection plus its fp32 upcast, 6 B, is less)."""

FUSED_CE_HIDDEN_COPIES = 3
"""Liger's fused linear cross-entropy, per token, in hidden-size elements of the compute
dtype: logits chunks bounded by ``BT x H`` elements (``chunk_size =
next_power_of_2(cdiv(BT, cdiv(V, H)))``, so up to twice that after rounding) plus the
input gradient it computes in the forward (``grad_input = torch.zeros_like(_input)``);
the logits are never materialised (Liger-Kernel
``src/liger_kernel/ops/fused_linear_cross_entropy.py``
``fused_linear_cross_entropy_forward``, 00eba634). Plus ``FUSED_CE_BYTES_PER_TOKEN``."""

FUSED_CE_BYTES_PER_TOKEN = 4
"""The fp32 per-token loss (Liger's ``loss_1d``) or log-sum-exp (CutCrossEntropy computes
the logits blockwise in on-chip memory and keeps only the log-sum-exp per token, Wijmans
et al. 2024, https://arxiv.org/abs/2411.09009) a fused cross-entropy keeps per token."""

CHUNKED_NLL_HIDDEN_COPIES = 2
"""TRL's ``loss_type: chunked_nll``, per token, in hidden-size elements of the compute dtype:
the copy of the last hidden states sorted valid tokens first (``hidden[order]``), whose
slices every chunk's checkpoint keeps for its backward, and its gradient, gathered from the
chunks in the backward (TRL v1.9.0 ``trl/trainer/sft_trainer.py``
``_chunked_cross_entropy_loss``). The logits are never held whole."""

CHUNKED_NLL_BYTES_PER_ELEMENT = 16
"""One chunk of TRL's ``chunked_nll`` (``extras.chunked_nll`` tokens, 256) per vocabulary
entry at its backward: the recomputed fp32 log-probabilities and probabilities (``_chunk``
keeps ``log_p`` and ``log_p.exp()`` for the entropy metric, 8 B) and the backward's fp32
gradients of the log-probabilities and logits (``CHUNK_TRANSIENT_BYTES_PER_ELEMENT``)."""

CHUNKED_NLL_HEAD_UPCAST_BYTES = 4
"""``_chunk`` computes ``h.float() @ w.float().t()``: a 16-bit ``lm_head`` weight is copied
to fp32 for every chunk (4 B per element; none for fp32 master weights), and under the
Trainer's 16-bit autocast the matmul casts it back to the compute dtype (2 B more), so the
projection still runs in 16 bits (TRL v1.9.0 ``trl/trainer/sft_trainer.py``; autocast's
matmul cast, torch ``torch/amp/autocast_mode.py``)."""

OFFLOAD_FORWARD_STASH = 5
"""Offloaded activations the forward keeps alive on the device until their copy to the host
has finished: ``OffloadActivations(max_fwd_stash_size=5)``, the default the recipes use
(torchtune v0.6.1 ``torchtune/training/_activation_offloading.py``); with checkpointing each
is a layer's input, the only tensor offloaded per layer ("only the checkpointed tensors will
be offloaded", ``docs/source/tutorials/memory_optimizations.rst``)."""

OFFLOAD_FORWARD_STASHES: dict[str, int] = {
    "torchtune": OFFLOAD_FORWARD_STASH,
    "trl": 5,
    "axolotl": 5,
    "axolotl-hidden-states": 2,
}
"""Offloaded tensors each implementation (``activation_offloader``) keeps alive in the
forward: TRL's ``get_act_offloading_ctx_manager(max_fwd_stash_size=5)`` (TRL v1.9.0
``trl/models/activation_offloading.py``), which axolotl's ``activation_offloading: true``
builds too (axolotl v0.18.0 ``src/axolotl/core/trainers/mixins/activation_checkpointing.py``);
axolotl's ``hidden_states`` mode ``CheckpointHiddenStatesOffload(max_fwd_stash_size=2)``
(v0.18.0 ``src/axolotl/monkeypatch/checkpoint_activation_offload.py``)."""

OFFLOADS_LOSS = frozenset({"trl", "axolotl"})
"""Implementations whose offloading context wraps the whole training step, the loss and its
backward included (TRL v1.9.0 ``trl/trainer/sft_trainer.py`` and ``dpo_trainer.py``
``training_step``: ``with self.maybe_activation_offload_context``; axolotl v0.18.0
``ActivationOffloadingMixin.training_step``), so the tensors the loss saves for the backward
(cross-entropy's fp32 log-softmax) are copied to the host as well; only the output head's
own forward is opted out (``NoOpManager`` hooks on ``lm_head``). torchtune's recipes run the
loss outside the context, and axolotl's ``hidden_states`` mode offloads only the marked
layer inputs. The loss's tensors are the forward's last, still in the stash when the backward
starts, so they are not copied back and the device peak is unchanged, but the first backward
node's hook waits for their copy to the host (``s0.wait_event`` over ``fwd_stash``)."""

WORKSPACE_GB = 2.0
"""Runtime context, BLAS workspaces and caching-allocator slack (calibrated)."""

QLORA_BYTES_PER_PARAM = 0.5
"""NF4 base weights: 4 bits per parameter (https://arxiv.org/abs/2305.14314)."""

QLORA_DEQUANT_BYTES_PER_PARAM = 17.5
"""Effective memory traffic per 4-bit weight per dequantising pass. A bandwidth-bound
kernel would move 4.5 B (read 0.5, write and re-read a 16-bit copy); measured QLoRA
costs ~3.9x that. Fitted to the Qwen README (one A100, batch 1, checkpointing, 2048
tokens): Q-LoRA minus LoRA is 225 ms per micro-batch for Qwen-7B, 425 ms for 14B and
38 ms for 1.8B, ~32 ms per billion decoder weights over three passes; the model's
4.5 B gave LoRA over Q-LoRA 1.05x where the README measures 1.35x."""

INT8_BYTES_PER_PARAM = 1.0
"""LLM.int8() base weights (``lora8``): ``Int8Params.CB``, one int8 per parameter
(bitsandbytes 0.50.2.dev0 ``bitsandbytes/nn/modules.py``)."""

INT8_SCALE_BYTES = 4.0
"""Per output row of each 8-bit linear: ``Int8Params.SCB``, the fp32 absmax of the row
(``int8_vectorwise_quant``, same file)."""

INT8_PEAK_RATIO = 2.0
"""The int8 GEMM's peak over the dense 16-bit one, taken at its largest: the datasheets
in the device catalogue give 2x (A100 624 vs 312 TOPS, H100/H200 1979 vs 989, MI300X
2615 vs 1307) or 1x (MI250X 383 vs 383); pricing every device at 2x keeps ``lora8``'s
cost a lower bound."""

INT8_INPUT_BYTES = 11.0
"""Memory traffic per element of a linear's fp16 input in ``MatMul8bitLt.forward``
(bitsandbytes 0.50.2.dev0 ``backends/cuda/ops.py`` ``int8_vectorwise_quant`` with a
threshold): the outlier scan ``A.abs() >= threshold`` then ``.any(dim=0)`` reads 2 B,
writes 2, reads 2, writes a 1 B mask and reads it (8 B); the quantiser reads 2 B and
writes the 1 B int8 copy (3 B). A non-fp16 input is first cast to fp16 (``e + 2`` more)."""

INT8_OUTPUT_BYTES = 10.0
"""Memory traffic per output element of an 8-bit linear (same files): the int8 GEMM
writes an int32 result (4 B), ``int8_mm_dequant`` reads it and writes fp16 (4 + 2 B);
a non-fp16 compute dtype casts it back (``2 + e`` more)."""

# --- host side -------------------------------------------------------------------------

DATA_SAMPLE_BASE_S = 1.0e-3
"""Host collate/tensorise cost per sample (calibrated)."""

DATA_SAMPLE_PER_1K_TOKENS_S = 1.0e-3
"""Extra host cost per sample per 1024 tokens of sequence (calibrated)."""

H2D_BYTES_PER_TOKEN = 24
"""input_ids, attention_mask and labels as int64: 3 x 8 bytes per token."""

PINNED_H2D_GBS = 25.0
"""Host-to-device copy from pinned memory (PCIe Gen4/5 x16, achieved; calibrated)."""

PAGEABLE_H2D_GBS = 8.0
"""From pageable memory the driver stages through a pinned bounce buffer (calibrated)."""

OP_DISPATCH_S = 8e-6
"""Host time PyTorch eager spends per op (dispatcher, autograd, launch; calibrated)."""

LAUNCH_BOUND_DISPATCH_SHARE = 0.5
"""Share of a GPU micro-batch's dispatch time the device waits for: the small pointwise,
norm and LoRA kernels finish faster than the host issues them, so their launches are
serialised with the step while the big GEMMs' launches overlap (only dispatch beyond
the device time is lost). Fitted to the Qwen README's Qwen-7B LoRA on one A100: tokens/s
at 1024 over 256 tokens per micro-batch is 1.71x, which the fill factor alone (1.27x)
does not explain; 0.5 projects 1.4x (fully overlapped dispatch projected 1.22x)."""

OPS_PER_LAYER_EAGER = 90
"""Ops per decoder layer per micro-batch, forward and backward (calibrated: ~30 fwd)."""

OPS_PER_LAYER_COMPILED = 30
"""With torch.compile the pointwise ops fuse into few generated kernels (calibrated)."""

OPS_PER_INT8_LINEAR = 20
"""Extra ops per 8-bit linear per micro-batch, counted in ``MatMul8bitLt`` (bitsandbytes
0.50.2.dev0): forward cast, abs, compare, two ``any``, argwhere, quantise, zero the outlier
columns, int8 GEMM, dequantise, cast back, and the outlier columns' gather, dequantise,
cast and addmm (16); backward scale, copy-cast, multiply and GEMM (4)."""

OPS_PER_LORA_TARGET = 12
"""Extra ops per adapted linear per layer: dropout, A, B, scale, add, fwd and bwd."""

HOST_STEP_OVERHEAD_S = 3e-3
"""Per optimizer step: loss .item() sync, LR scheduler, zero_grad, logging (calibrated)."""

# --- communication -------------------------------------------------------------------

INTERCONNECT_GBS: dict[str, float] = {
    "rocm-instinct": 300.0,  # calibrated: xGMI ring all-reduce bus bandwidth, 8x MI300X
    "cuda": 350.0,  # calibrated: NVLink ring all-reduce bus bandwidth, 8x H100
    "rocm-radeon": 25.0,  # calibrated: PCIe 4.0 x16 peer copies
    "cpu": 1.0,  # measured: gloo over loopback TCP, 2 ranks (benchmarks/comm_model.py)
}
"""Achieved all-reduce bus bandwidth per device, GB/s. The CPU's: 2 gloo ranks all-reducing
13 MB reached 0.96 to 1.23 GB/s at best of 30 in four runs, 0.77 at the median of 30 on a
quiet host (2-core x86_64 VM shared with other jobs, torch 2.13 CPU build), where 10 had
been assumed."""

COLLECTIVE_BASE_LATENCY_S: dict[str, float] = {
    "rocm-instinct": 8.4e-6,
    "cuda": 8.4e-6,
    "rocm-radeon": 8.4e-6,
    "cpu": 0.0,  # gloo: all of it in the steps
}
COLLECTIVE_STEP_LATENCY_S: dict[str, float] = {
    "rocm-instinct": 3.4e-6,  # NCCL's NVLink row; RCCL's own xGMI figures not checked
    "cuda": 3.4e-6,  # NVLink
    "rocm-radeon": 5.7e-6,  # PCI
    "cpu": 75e-6,  # a send and receive over loopback TCP
}
"""The fixed cost of one ring collective, whatever its size: a base latency plus one per
ring step (an all-reduce takes ``2 (n-1)`` steps, an all-gather or a reduce-scatter
``n-1``). GPU values are NCCL's own tuning model for the Simple protocol that
gradient-sized messages use (NVIDIA/nccl ``src/graph/tuning.cc``: ``baseLat`` Ring/Simple
8.4 us, ``hwLat`` Ring/Simple 3.4 us per step over NVLink, 5.7 us over PCI).
The gloo CPU row is measured by ``benchmarks/comm_model.py``: a one-element all-reduce of
2 ranks (two steps) took 120 to 190 us at best of 30 in four runs (same VM)."""

DDP_BUCKET_CAP_MB = 25
DDP_FIRST_BUCKET_MB = 1
"""DistributedDataParallel's gradient buckets when ``bucket_cap_mb`` is unset: 25 MiB, the
first (the last gradients of the backward) 1 MiB; with ``bucket_cap_mb`` set every bucket
takes it (torch 2.13 ``torch/nn/parallel/distributed.py`` ``_DEFAULT_BUCKET_CAP_MB``,
``BucketCapacityConfig``; ``torch.distributed._DEFAULT_FIRST_BUCKET_BYTES``)."""

AUTOGRAD_NODES_PER_LAYER = 96
AUTOGRAD_NODES_PER_LORA_TARGET = 15
"""Autograd nodes one decoder layer's forward adds to the graph, counted on the native
decoder under bf16 autocast (torch 2.13): 96 for full fine-tuning, about 15 more per
LoRA-adapted linear (a LoRA layer also loses its frozen weights' accumulate and cast
nodes, about 20, which the count keeps: it errs high by that)."""

FIND_UNUSED_NODE_S = 1.0e-6
"""Host time DDP's ``find_unused_parameters`` search spends per autograd node: it walks the
graph from the outputs after every synchronised forward (torch 2.13
``torch/nn/parallel/distributed.py`` ``_post_forward`` → ``Reducer::prepare_for_backward``).
Measured: 3.0 ms more per forward over 2,801 nodes, one gloo rank of a 400-layer stack
(2-core x86_64 VM, torch 2.13 CPU build)."""

HOST_OPTIMIZER_NOT_PRICED = (
    "the optimizer step runs on the host (offloaded optimizer): its host time is not "
    "in the projected step time, only its gradient and parameter copies over PCIe"
)
"""The warning of a projected run whose optimizer is offloaded. DeepSpeed steps it with
DeepSpeedCPUAdam, "5X--7X faster than the standard PyTorch implementation" (DeepSpeed
v0.19.6 ``docs/_tutorials/zero-offload.md``; "5.1x to 6.5x" with AVX-512 for 1 to 10
billion parameters, ``docs/_pages/training.md``), and FSDP's CPU offload with the torch
optimizer over the host shards; neither gives an absolute rate to price the step with."""

# --- optimizers ------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerModel:
    """What an optimizer costs per trainable parameter.

    ``step_bytes`` is the device-memory traffic of one step, ``state_bytes``
    the state it keeps, and ``best`` the variant of the same algorithm that
    moves the fewest bytes (the excess over it is kernel_shape waste).
    """

    step_bytes: float
    state_bytes: float
    best: str


OPTIMIZERS: dict[str, OptimizerModel] = {
    # torch.optim.AdamW foreach: weight decay, lerp, mul, addcmul, sqrt, div, add,
    # addcdiv: 20 fp32 tensor reads/writes per parameter = 80 bytes.
    "adamw_torch": OptimizerModel(step_bytes=80, state_bytes=8, best="adamw_torch_fused"),
    # Fused AdamW: read param, grad, m, v; write param, m, v once: 7 x 4 bytes.
    "adamw_torch_fused": OptimizerModel(step_bytes=28, state_bytes=8, best="adamw_torch_fused"),
    # bitsandbytes 8-bit AdamW (fused kernel): 1-byte m and v, fp32 param and grad.
    "adamw_bnb_8bit": OptimizerModel(step_bytes=16, state_bytes=2, best="adamw_bnb_8bit"),
    "paged_adamw_8bit": OptimizerModel(step_bytes=16, state_bytes=2, best="paged_adamw_8bit"),
    # HF "sgd": torch.optim.SGD without momentum: read param and grad, write param.
    "sgd": OptimizerModel(step_bytes=12, state_bytes=0, best="sgd"),
    # Adafactor: factored second moment, row/column reductions over each matrix
    # (~4 B/param of state per the HF performance guide, which this follows).
    "adafactor": OptimizerModel(step_bytes=24, state_bytes=4, best="adafactor"),
}

LORA_ALL_LINEAR = frozenset({"all-linear", "all_linear", "all"})

MASTER_WEIGHT_BYTES = 4
"""DeepSpeed's ZeRO optimizers keep an fp32 copy of the trainable weights as optimizer
state while the module holds 16-bit weights and gradients: "the optimizer states (e.g.,
for Adam optimizer, 32-bit weights, and the first, and second moment estimates)"
(DeepSpeed v0.18.2, docs/code-docs/source/zero3.rst)."""

PURE_WEIGHT_BYTES = 2
"""Bytes per trainable weight, and per gradient, of a model loaded and trained in 16 bits
(``WorkloadConfig.pure_precision``; fp8 runs keep bf16 weights)."""

STATE_IN_PARAM_DTYPE = frozenset({"adamw_torch", "adamw_torch_fused", "sgd", "adafactor"})
"""Optimizers whose state takes the weights' dtype: torch's Adam/AdamW create their
moments with ``torch.zeros_like(param)`` (torch v2.7.0, torch/optim/adam.py
``_init_group``) and transformers' Adafactor with ``.to(grad)`` (transformers v4.57.6,
src/transformers/optimization.py), so a bf16 model's state is half the fp32 one;
bitsandbytes' 8-bit states are one byte whatever the weights."""

GATHERED_LAYERS = 2
"""Decoder layers whose full weights a ZeRO-3 / FSDP FULL_SHARD rank holds at once: the
one computing and the one prefetched (FSDP's default ``BackwardPrefetch.BACKWARD_PRE``)."""

GRAD_BYTES = 4
"""Gradients are fp32: AMP keeps fp32 master weights, so ``param.grad`` is fp32."""

GB = 1e9
TERA = 1e12


class MemoryEstimate(BaseModel):
    """Projected peak device memory of one rank, by component, in GB."""

    model_config = ConfigDict(frozen=True)

    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float
    workspace_gb: float
    total_gb: float

    def breakdown(self) -> str:
        """The components in one line, for an OOM message a user can act on."""
        return (
            f"weights {self.weights_gb:.1f}, grads {self.grads_gb:.1f}, "
            f"optimizer {self.optimizer_gb:.1f}, activations {self.activations_gb:.1f}, "
            f"workspace {self.workspace_gb:.1f}"
        )


@dataclass(frozen=True)
class _Resolved:
    """What a config means on a device once the defaults and fallbacks are applied."""

    arch: ModelArch
    precision: str
    attention: str
    optimizer: str
    lora_targets: tuple[tuple[int, int], ...]
    warnings: tuple[str, ...]
    matmul_params: int
    """``arch.matmul_params``, ``arch.total_params`` and the parameters of all layers,
    counted once per run: each is asked for by several of the run's estimates."""
    total_params: int
    layer_params: int
    reference: str | None = None
    """DPO's reference (``WorkloadConfig.reference``); None for supervised fine-tuning."""


class DeviceCorrection(BaseModel):
    """Multipliers fitted to one real device's measured runs (``self_calibration.py``).

    Each scales one mechanism of the model where the catalogue's published peaks and
    the calibrated constants do not describe the device as it really runs: ``compute``
    every kernel's achieved fraction of peak, ``attention`` the attention kernels on
    top of it, ``bandwidth`` the achieved memory bandwidth, ``host`` the host-side
    dispatch and per-step overhead, ``data`` the per-sample input cost. All 1: the
    model as published. A correction changes projections only: they stay projected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    compute: float = Field(default=1.0, gt=0)
    attention: float = Field(default=1.0, gt=0)
    bandwidth: float = Field(default=1.0, gt=0)
    host: float = Field(default=1.0, gt=0)
    data: float = Field(default=1.0, gt=0)


class AnalyticModel:
    """Projects throughput, MFU, memory and the waste budget of a workload on a device."""

    def __init__(self, device: DeviceSpec, correction: DeviceCorrection | None = None) -> None:
        self.device = device
        self.correction = correction or DeviceCorrection()
        """Fitted to the device's measured runs; the identity when none was saved."""

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        """Project ``steps`` optimizer steps of ``config`` (all identical: no noise).

        Raises OutOfMemory (with the estimate) when the memory estimate does not fit the device,
        and ValueError for a config the model cannot price (unknown precision
        or attention, no architecture).
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        res = self._resolve(config)
        memory = self._memory(config, res)
        if memory.total_gb > self.device.memory_gb:
            raise OutOfMemory(
                f"projected OOM on {self.device.display_name}: needs {memory.total_gb:.1f} GB "
                f"of {self.device.memory_gb:g} GB ({memory.breakdown()}), assuming "
                f"{launch_description(config)}; a launcher that runs it otherwise is described in the "
                "sidecar (world_size, strategy, zero_stage, offload_optimizer, offload_params)",
                memory,
            )
        budget = self._waste_budget(config, res)
        step_time = budget.total
        tokens_per_sec = config.tokens_per_step / step_time
        return RunMetrics(
            steps=steps,
            tokens_per_sec=tokens_per_sec,
            step_time_s=step_time,
            tokens_per_step=config.tokens_per_step,
            hbm_peak_gb=memory.total_gb,
            mfu_pct=self._mfu_pct(config, res, tokens_per_sec),
            projected=True,
            runner_kind="fake",
            device=self.device.name,
            config_hash=config_hash(config),
            waste_budget=budget,
            samples=[tokens_per_sec],
            warnings=list(res.warnings),
            world_size=config.world_size,
        )

    def step_budget(self, config: WorkloadConfig) -> WasteBudget:
        """Projected seconds of one optimizer step by bucket, whether or not it fits the
        device: for checks of the time model against published runs whose memory savers
        (selective checkpointing, tensor parallelism) this model does not have."""
        return self._waste_budget(config, self._resolve(config))

    def memory(self, config: WorkloadConfig) -> MemoryEstimate:
        """Projected peak memory of one rank, whether or not it fits the device."""
        return self._memory(config, self._resolve(config))

    def mfu_pct(self, config: WorkloadConfig, tokens_per_sec: float) -> float:
        """MFU of a throughput on this device as this model counts it; the torch runner
        reports its measured tokens/s this way too."""
        return self._mfu_pct(config, self._resolve(config), tokens_per_sec)

    # --- resolution --------------------------------------------------------------------

    def _resolve(self, config: WorkloadConfig) -> _Resolved:
        """Apply the device's fallbacks once, collecting a warning for each."""
        arch = config.arch
        warnings: list[str] = []
        precision = self._precision(config.precision, warnings)
        attention = self._attention(config, precision, warnings)
        if _host_optimizer(config):
            warnings.append(HOST_OPTIMIZER_NOT_PRICED)
        if config.activation_offloading and self.device.kind == "cpu":
            warnings.append(
                "activation offloading copies to the host from an accelerator; on "
                f"{self.device.display_name} it is modelled as off"
            )
        return _Resolved(
            arch=arch,
            precision=precision,
            attention=attention,
            optimizer=self._optimizer(config.optimizer, warnings),
            lora_targets=_lora_target_shapes(config, arch, warnings),
            warnings=tuple(warnings),
            matmul_params=arch.matmul_params,
            total_params=arch.total_params,
            layer_params=arch.layers * arch.params_per_layer,
            reference=config.reference if config.objective == "dpo" else None,
        )

    def _precision(self, precision: str, warnings: list[str]) -> str:
        """The peak-rate key the linear GEMMs run at."""
        if precision == "unknown":
            raise ValueError(
                "precision is unknown: the analytic model needs one of fp32, tf32, fp16, bf16, fp8"
            )
        peaks = self.device.peak_tflops
        name = self.device.display_name
        if precision == "tf32" and self.device.kind == "rocm":
            warnings.append(
                f"tf32 on {name}: PyTorch on ROCm does not use TF32 for matmuls by default; "
                "modelled as fp32"
            )
            return "fp32"
        if precision == "fp8" and "fp8" not in peaks:
            warnings.append(f"{name} has no fp8 matrix rate; modelled as bf16")
            return "bf16"
        if precision not in peaks:
            warnings.append(f"{name} has no {precision} rate; modelled at the fp32 rate")
            return "fp32"
        return precision

    def _attention(self, config: WorkloadConfig, precision: str, warnings: list[str]) -> str:
        """The attention kernel that really runs: flash, sdpa (fused) or math (eager)."""
        impl = config.attention_impl
        if impl == "unknown":
            raise ValueError(
                "attention_impl is unknown: the analytic model needs one of eager, sdpa, flash"
            )
        name = self.device.display_name
        if impl == "eager":
            return "math"
        if impl == "flash" and not self.device.has_flash_attention:
            warnings.append(f"flash-attn is not available on {name}; modelled as sdpa")
            impl = "sdpa"
        if impl == "flash" and precision in ("fp32", "tf32"):
            warnings.append("flash-attn needs fp16/bf16 inputs; fp32 attention modelled as sdpa")
            impl = "sdpa"
        if impl == "sdpa" and self._sdpa_falls_back(config):
            warnings.append(
                f"SDPA on {name} falls back to the MATH backend unless {RADEON_SDPA_ENV}=1; "
                "modelled as eager attention"
            )
            return "math"
        return impl

    def _sdpa_falls_back(self, config: WorkloadConfig) -> bool:
        """RDNA3 SDPA has no fused backend unless the experimental AOTriton one is enabled."""
        return self.device.platform == "rocm-radeon" and config.env_vars.get(RADEON_SDPA_ENV) != "1"

    def _best_attention(self, precision: str) -> str:
        """The fastest attention kernel this device offers at this precision."""
        if self.device.has_flash_attention and precision not in ("fp32", "tf32"):
            return "flash"
        return "sdpa"

    @staticmethod
    def _optimizer(name: str, warnings: list[str]) -> str:
        """The OPTIMIZERS key; an unmodelled optimizer is priced as the HF default, and said so."""
        key = OPTIMIZER_ALIASES.get(name.lower(), name.lower())
        if key not in OPTIMIZERS:
            warnings.append(f"optimizer {name!r} is not modelled; priced as adamw_torch")
            return "adamw_torch"
        return key

    # --- FLOPs -------------------------------------------------------------------------

    @staticmethod
    def _adapter_params(config: WorkloadConfig, res: _Resolved) -> int:
        """LoRA A and B matrices over all layers; 0 for full fine-tuning (no targets)."""
        rank = config.lora_rank or 0
        return res.arch.layers * sum(rank * (i + o) for i, o in res.lora_targets)

    def _linear_flops_per_token(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Forward + backward GEMM FLOPs per token of the linears (trainable-aware)."""
        n = res.matmul_params
        if config.finetune == "full":
            return 6.0 * n
        return 4.0 * n + 6.0 * self._adapter_params(config, res)

    def _recompute_flops_per_token(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Extra linear FLOPs per token of re-running each checkpointed layer's forward."""
        return 2.0 * (res.layer_params + self._adapter_params(config, res))

    @staticmethod
    def _attention_flops_per_token(config: WorkloadConfig, arch: ModelArch) -> float:
        """PaLM's 12·L·H·Q·T: QK^T and AV, forward and backward."""
        return 12.0 * arch.layers * arch.heads * arch.dim_per_head * config.seq_len

    # --- time --------------------------------------------------------------------------

    def _efficiency(
        self, base: float, config: WorkloadConfig, res: _Resolved, saturated: bool
    ) -> float:
        """A kernel's base efficiency scaled by platform, model width and micro-batch fill."""
        kind = self.device.kind
        eff = base * PLATFORM_EFFICIENCY[self.device.platform]
        eff *= _fill(res.arch.hidden, SATURATION_HIDDEN[kind])
        if not saturated:
            eff *= _fill(config.batch_size * config.seq_len, SATURATION_TOKENS[kind])
        return eff * self.correction.compute

    def _linear_efficiency(
        self, config: WorkloadConfig, res: _Resolved, precision: str, saturated: bool
    ) -> float:
        """Linear GEMMs: torch.compile fuses around them; fp8 and fp16 on ROCm lose a little;
        fp32 ones run closer to their (much lower) peak."""
        eff = self._efficiency(GEMM_EFFICIENCY, config, res, saturated)
        if precision == "fp32":
            eff *= self._fp32_gain()
        if config.torch_compile:
            eff *= COMPILE_SPEEDUP
        if precision == "fp8":
            eff *= FP8_GEMM_RATIO
        if precision == "fp16" and self.device.platform == "rocm-instinct":
            eff *= FP16_ROCM_GEMM_RATIO
        return min(eff, MAX_EFFICIENCY * self.correction.compute)

    def _fp32_gain(self) -> float:
        """``FP32_KERNEL_GAIN`` where 16-bit math runs on faster matrix units than fp32
        (every catalogue GPU); 1 where both share one rate (the generic CPU)."""
        peaks = self.device.peak_tflops
        return FP32_KERNEL_GAIN if peaks["bf16"] > peaks["fp32"] else 1.0

    def _device_time(
        self,
        config: WorkloadConfig,
        res: _Resolved,
        *,
        precision: str,
        attention: str,
        memory_savers: bool,
        saturated: bool,
    ) -> float:
        """Seconds of device work for one micro-batch.

        ``memory_savers`` switches checkpoint recompute and QLoRA dequantisation
        on; ``saturated`` pretends the micro-batch fills the device. Together
        with the precision and attention kernel these are the counterfactuals
        the waste budget peels off.
        """
        tokens = config.batch_size * config.seq_len
        recompute = memory_savers and config.gradient_checkpointing
        linear_flops = self._linear_flops_per_token(config, res)
        if recompute:
            linear_flops += self._recompute_flops_per_token(config, res)
        peak = self.device.peak_tflops[precision] * TERA
        eff = self._linear_efficiency(config, res, precision, saturated)
        seconds = tokens * linear_flops / (peak * eff)
        seconds += self._attention_time(config, res, precision, attention, recompute, saturated)
        if memory_savers and config.finetune == "qlora":
            seconds += self._dequant_time(config, res)
        if memory_savers and config.finetune == "lora8":
            passes = 2 if recompute else 1
            seconds += self._int8_time(config, res, precision, saturated, passes, backward=True)
        if res.reference in ("model", "adapter"):
            seconds += self._reference_time(
                config, res, precision, attention, memory_savers=memory_savers, saturated=saturated
            )
        if memory_savers and self._offloads_activations(config):
            # the copies run on a second stream that overlaps them with the compute
            # (OffloadActivations(use_streams=True), the recipes' default, v0.6.1
            # torchtune/training/_activation_offloading.py): only what they exceed it by stalls
            seconds = max(seconds, self._activation_copy_time(config, res))
            if config.activation_offloader in OFFLOADS_LOSS:
                seconds += self._loss_saved_bytes(config, res) / (PINNED_H2D_GBS * GB)
        return seconds

    def _reference_time(
        self,
        config: WorkloadConfig,
        res: _Resolved,
        precision: str,
        attention: str,
        *,
        memory_savers: bool,
        saturated: bool,
    ) -> float:
        """DPO's reference log-probs each micro-batch: a forward of the frozen weights (a copy,
        or the model with its adapter disabled) over the same sequences, no backward. The
        linears' 2N FLOPs per token, a third of the attention (its forward share), and for
        QLoRA one more dequantising pass."""
        tokens = config.batch_size * config.seq_len
        peak = self.device.peak_tflops[precision] * TERA
        eff = self._linear_efficiency(config, res, precision, saturated)
        seconds = tokens * 2.0 * res.matmul_params / (peak * eff)
        seconds += self._attention_time(config, res, precision, attention, False, saturated) / 3.0
        if memory_savers and config.finetune == "qlora":
            seconds += res.layer_params * QLORA_DEQUANT_BYTES_PER_PARAM / self._bandwidth()
        if memory_savers and config.finetune == "lora8":
            seconds += self._int8_time(config, res, precision, saturated, 1, backward=False)
        return seconds

    def _attention_time(
        self,
        config: WorkloadConfig,
        res: _Resolved,
        precision: str,
        attention: str,
        recompute: bool,
        saturated: bool,
    ) -> float:
        """Attention FLOPs at the kernel's efficiency, plus eager's score-matrix traffic.

        Recompute re-runs the forward: a third of the FLOPs (4 of 12 LHQT).
        """
        arch = res.arch
        attn_precision = "bf16" if precision == "fp8" else precision
        share = 4.0 / 3.0 if recompute else 1.0
        flops = (
            config.batch_size
            * config.seq_len
            * self._attention_flops_per_token(config, arch)
            * share
        )
        eff = self._efficiency(ATTENTION_EFFICIENCY[attention], config, res, saturated)
        if attn_precision == "fp32":
            eff = min(eff * self._fp32_gain(), MAX_EFFICIENCY * self.correction.compute)
        seconds = flops / (self.device.peak_tflops[attn_precision] * TERA * eff)
        if attention == "math":
            passes = EAGER_SCORE_PASSES_FWD + EAGER_SCORE_PASSES_BWD
            if recompute:
                passes += EAGER_SCORE_PASSES_FWD
            score_bytes = (
                arch.layers
                * config.batch_size
                * arch.heads
                * config.seq_len**2
                * _element_bytes(attn_precision)
            )
            seconds += passes * score_bytes / self._bandwidth()
        return seconds / self.correction.attention

    def _dequant_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """QLoRA: read 4-bit weights, write and re-read a 16-bit copy, per fwd and bwd pass."""
        passes = 3 if config.gradient_checkpointing else 2
        return passes * res.layer_params * QLORA_DEQUANT_BYTES_PER_PARAM / self._bandwidth()

    def _int8_time(
        self,
        config: WorkloadConfig,
        res: _Resolved,
        precision: str,
        saturated: bool,
        forward_passes: int,
        *,
        backward: bool,
    ) -> float:
        """What an 8-bit base (``lora8``) adds to a 16-bit LoRA's micro-batch, in seconds
        (negative where the int8 GEMMs save more than the quantisation traffic costs).

        ``forward_passes`` forwards of the decoder-layer linears run as int8 GEMMs instead
        of 16-bit ones, each moving the activation quantisation and dequantisation bytes;
        ``backward`` adds one dequantisation of every 8-bit weight for the input gradient
        (whose GEMM stays 16-bit and is already counted)."""
        tokens = config.batch_size * config.seq_len
        shapes = res.arch.layer_linear_shapes().values()
        layers = res.arch.layers
        weights = layers * sum(i * o for i, o in shapes)
        gemm_flops = tokens * 2.0 * weights * forward_passes
        sixteen = self.device.peak_tflops[precision] * TERA
        sixteen *= self._linear_efficiency(config, res, precision, saturated)
        int8 = INT8_PEAK_RATIO * self.device.peak_tflops["bf16"] * TERA
        int8 *= self._linear_efficiency(config, res, "bf16", saturated)
        seconds = gemm_flops / int8 - gemm_flops / sixteen
        element = _element_bytes(precision)
        cast = 0.0 if precision == "fp16" else element + 2.0
        per_token = layers * sum(
            (INT8_INPUT_BYTES + cast) * i + (INT8_OUTPUT_BYTES + cast) * o for i, o in shapes
        )
        moved = tokens * per_token * forward_passes
        if backward:
            moved += weights * (INT8_BYTES_PER_PARAM + 3.0 * element)
        return seconds + moved / self._bandwidth()

    def _bandwidth(self) -> float:
        """Achievable device-memory bandwidth, bytes/s."""
        return self.device.bandwidth_gbs * GB * BANDWIDTH_EFFICIENCY * self.correction.bandwidth

    def _optimizer_time(self, config: WorkloadConfig, res: _Resolved, optimizer: str) -> float:
        """The optimizer step is memory-bound: its bytes over the bandwidth. None on the
        device where the optimizer is offloaded: it steps on the host, which is not priced
        (``HOST_OPTIMIZER_NOT_PRICED``)."""
        if _host_optimizer(config):
            return 0.0
        params = self._trainable_params(config, res) / _shards(config)
        return params * OPTIMIZERS[optimizer].step_bytes / self._bandwidth()

    def _dispatch_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Host seconds eager PyTorch spends issuing one micro-batch's ops."""
        per_layer = OPS_PER_LAYER_COMPILED if config.torch_compile else OPS_PER_LAYER_EAGER
        if config.finetune != "full":
            per_layer += OPS_PER_LORA_TARGET * len(res.lora_targets)
        if config.finetune == "lora8":
            per_layer += OPS_PER_INT8_LINEAR * len(res.arch.layer_linear_shapes())
        return res.arch.layers * per_layer * OP_DISPATCH_S * self.correction.host

    def _host_gap(self, dispatch_s: float, device_s: float) -> float:
        """Seconds per micro-batch the device waits for the host to issue its ops.

        A CPU runs ops synchronously: all of the dispatch is lost. A GPU waits for the
        launch-bound share, and for the rest only where it exceeds the device time.
        """
        if self.device.kind == "cpu":
            return dispatch_s
        serial = LAUNCH_BOUND_DISPATCH_SHARE * dispatch_s
        return serial + max(0.0, dispatch_s - serial - device_s)

    def _data_time(self, config: WorkloadConfig, busy_s: float) -> float:
        """Seconds per micro-batch the step waits for its data."""
        per_sample = DATA_SAMPLE_BASE_S + DATA_SAMPLE_PER_1K_TOKENS_S * config.seq_len / 1024
        load = config.batch_size * per_sample * self.correction.data
        if config.dataloader_workers == 0:
            wait = load
        else:
            wait = max(0.0, load / config.dataloader_workers - busy_s)
        return wait + self._copy_time(config)

    def _copy_time(self, config: WorkloadConfig) -> float:
        """Host-to-device copy of one micro-batch; none when the device is the host."""
        if self.device.kind == "cpu":
            return 0.0
        rate = PINNED_H2D_GBS if config.dataloader_pin_memory else PAGEABLE_H2D_GBS
        return config.batch_size * config.seq_len * H2D_BYTES_PER_TOKEN / (rate * GB)

    def _comm_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Gradient (and FSDP / ZeRO parameter) collectives per optimizer step, not
        overlapped: their bytes over the interconnect plus a fixed latency per collective,
        as many as ``sharded_collectives`` counts for FSDP / DeepSpeed (``_gathered_bytes``
        per all-gather, ``reduced_gradient_bytes`` per reduced parameter) and
        ``reference_gathers`` for DPO's sharded reference copy (``_reference_bytes`` each),
        plus the PCIe copies of offload (``_offload_time``); DDP with
        ``find_unused_parameters`` adds its graph walk and the all-reduce of the map of
        used parameters (``Reducer::all_reduce_local_used_map``, torch 2.13
        ``torch/csrc/distributed/c10d/reducer.cpp``), once per synchronised step."""
        n = config.world_size
        offload = self._offload_time(config, res)
        if n == 1:
            return offload
        params = self._trainable_params(config, res)
        bandwidth = INTERCONNECT_GBS[self.device.platform] * GB
        if config.strategy in ("fsdp", "deepspeed"):
            gathers, reductions = sharded_collectives(config)
            gathers_ref = reference_gathers(config, res.reference)
            # an all-reduce where nothing is sharded (stage 0), else a reduce-scatter
            reduce_factor = 2 if _stage(config) == 0 else 1
            moved = gathers * self._gathered_bytes(config, res)
            moved += gathers_ref * self._reference_bytes(config, res)
            moved += (
                reductions * reduce_factor * params * reduced_gradient_bytes(config, res.precision)
            )
            volume = (n - 1) / n * moved
            # per sharded unit (each decoder block, and the root for the embeddings and head)
            units = res.arch.layers + 1
            latency = units * (
                (gathers + gathers_ref) * self._collective_latency(n - 1)
                + reductions * self._collective_latency(reduce_factor * (n - 1))
            )
            return volume / bandwidth + latency + offload
        # DDP all-reduces each gradient in its own dtype (its buckets group parameters by
        # dtype and device, torch 2.13 torch/csrc/distributed/c10d/reducer.cpp
        # ``compute_bucket_assignment_by_size``): fp32 beside AMP's master weights, 16-bit
        # for a model trained in its compute dtype (``_state_bytes``)
        grad_bytes = _state_bytes(config, res)[1]
        volume = 2 * (n - 1) / n * params * grad_bytes
        all_reduce = self._collective_latency(2 * (n - 1))
        buckets = len(ddp_buckets(self._gradient_bytes(config, res), config.ddp_bucket_cap_mb))
        latency = buckets * all_reduce
        if config.find_unused_parameters:
            latency += all_reduce + self._graph_walk_time(config, res)
        # DDP all-reduces in every backward outside its no_sync: once per step under
        # accelerate's loop, every micro-batch with sync_each_batch or under a loop of plain
        # backwards (torchtune, LLaMA-Factory v1, torchtitan; ``sharded_collectives``)
        syncs = 1 if _skips_sync(config) else config.grad_accum_steps
        return syncs * (volume / bandwidth + latency)

    def _collective_latency(self, steps: int) -> float:
        """The fixed cost of one ring collective of ``steps`` steps on this platform."""
        platform = self.device.platform
        return COLLECTIVE_BASE_LATENCY_S[platform] + steps * COLLECTIVE_STEP_LATENCY_S[platform]

    def _gathered_bytes(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Bytes of the parameters one all-gather assembles in full (``(n-1)/n`` of them
        cross the interconnect to each rank).

        FSDP and ZeRO-3 shard every parameter of the wrapped model, frozen ones included:
        a (Q)LoRA run gathers its frozen base in the dtype it is stored in (16-bit, int8,
        or 4-bit packed into the ``bnb_4bit_quant_storage`` dtype for QLoRA under FSDP /
        ZeRO-3: "when it is set to ``bfloat16``, 32/4 = 8 4-bit params are packed
        together", PEFT v0.20.1.dev0 ``docs/source/accelerate/deepspeed.md``) and the
        adapters in the compute dtype. ZeRO-1/2 keep the parameters whole on every rank
        and all-gather only the updated 16-bit trainable partitions after the step.
        """
        trainable = self._trainable_params(config, res) * _element_bytes(res.precision)
        if config.finetune == "full" or (config.strategy == "deepspeed" and _stage(config) < 3):
            return trainable
        held = _state_bytes(config, res)[0]
        frozen = self._weight_bytes(config, res) - self._adapter_params(config, res) * held
        return frozen + trainable

    def _offload_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Seconds per optimizer step of the host-device copies offload makes
        (``offload_copy_bytes``) at the pinned PCIe rate: DeepSpeed's ``pin_memory``
        defaults to true for ``offload_optimizer`` and ``offload_param`` (DeepSpeed
        v0.19.6 ``docs/_pages/config-json.md``), FSDP2's ``CPUOffloadPolicy`` to
        ``pin_memory=True`` (torch 2.13 ``torch/distributed/fsdp/_fully_shard/
        _fsdp_api.py``). None where the device is the host."""
        if self.device.kind == "cpu":
            return 0.0
        moved = offload_copy_bytes(
            config,
            self._trainable_params(config, res),
            _element_bytes(res.precision),
            self._gathered_bytes(config, res),
        )
        if config.offload_params:
            # the reference copy is offloaded like the policy (TRL passes the run's CPU
            # offload / DeepSpeed config to it): its shard crosses PCIe before each gather
            gathered = reference_gathers(config, res.reference) * self._reference_bytes(config, res)
            moved += gathered / config.world_size
        return moved / (PINNED_H2D_GBS * GB)

    def _graph_walk_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Host seconds ``find_unused_parameters`` spends walking one forward's graph."""
        per_layer = AUTOGRAD_NODES_PER_LAYER
        per_layer += AUTOGRAD_NODES_PER_LORA_TARGET * len(res.lora_targets)
        return res.arch.layers * per_layer * FIND_UNUSED_NODE_S * self.correction.host

    @staticmethod
    def _gradient_bytes(config: WorkloadConfig, res: _Resolved) -> list[int]:
        """Bytes of each trainable tensor's gradient, in the order DDP fills its buckets:
        the reverse of the model's registration order (embeddings, then each block's
        attention, MLP and norms, then the final norm and the head), the order the
        backward produces them in, each in the gradients' dtype (``_state_bytes``)."""
        arch = res.arch
        order: list[int] = [arch.vocab * arch.hidden]
        shapes = arch.layer_linear_shapes()
        if config.finetune == "full":
            block = [i * o for i, o in shapes.values()]
            if arch.qkv_bias:
                block += [shapes["q_proj"][1], shapes["k_proj"][1], shapes["v_proj"][1]]
            block += [arch.hidden, arch.hidden]
            order += block * arch.layers + [arch.hidden]
            if not arch.tied_embeddings:
                order.append(arch.vocab * arch.hidden)
        else:  # each adapted linear's lora_A (in x r) and lora_B (r x out)
            rank = config.lora_rank or 0
            order = [n * rank for i, o in res.lora_targets for n in (i, o)] * arch.layers
        grad_bytes = _state_bytes(config, res)[1]
        return [round(n * grad_bytes) for n in reversed(order)]

    def _waste_budget(self, config: WorkloadConfig, res: _Resolved) -> WasteBudget:
        """Seconds per optimizer step, by bucket; the buckets sum to the step time."""
        config = _as_run(config)
        actual = self._device_time(
            config,
            res,
            precision=res.precision,
            attention=res.attention,
            memory_savers=True,
            saturated=False,
        )
        at_bf16 = min(
            actual,
            self._device_time(
                config,
                res,
                precision="bf16",
                attention=res.attention,
                memory_savers=True,
                saturated=False,
            ),
        )
        reference_precision = "bf16" if at_bf16 < actual else res.precision
        best_attention = self._best_attention(reference_precision)
        best_kernel = min(
            at_bf16,
            self._device_time(
                config,
                res,
                precision=reference_precision,
                attention=best_attention,
                memory_savers=True,
                saturated=False,
            ),
        )
        reference_attention = best_attention if best_kernel < at_bf16 else res.attention
        lean = min(
            best_kernel,
            self._device_time(
                config,
                res,
                precision=reference_precision,
                attention=reference_attention,
                memory_savers=False,
                saturated=True,
            ),
        )

        dispatch = self._dispatch_time(config, res)
        host_gap = self._host_gap(dispatch, actual)
        data_wait = self._data_time(config, busy_s=actual + host_gap)
        optimizer = self._optimizer_time(config, res, res.optimizer)
        optimizer_best = min(
            optimizer, self._optimizer_time(config, res, OPTIMIZERS[res.optimizer].best)
        )

        accum = config.grad_accum_steps
        return WasteBudget(
            useful_gpu=accum * lean + optimizer_best,
            precision_path=accum * (actual - at_bf16),
            kernel_shape=accum * (at_bf16 - best_kernel) + (optimizer - optimizer_best),
            memory_headroom=accum * (best_kernel - lean),
            host_gap=accum * host_gap + HOST_STEP_OVERHEAD_S * self.correction.host,
            data_wait=accum * data_wait,
            comm_excess=self._comm_time(config, res),
        )

    def _mfu_pct(self, config: WorkloadConfig, res: _Resolved, tokens_per_sec: float) -> float:
        """Model FLOPs (no recompute) per second per device over the dense bf16 peak."""
        flops_per_token = self._linear_flops_per_token(
            config, res
        ) + self._attention_flops_per_token(config, res.arch)
        per_device = tokens_per_sec / config.world_size
        return 100.0 * per_device * flops_per_token / (self.device.peak_tflops["bf16"] * TERA)

    # --- memory ------------------------------------------------------------------------

    def _trainable_params(self, config: WorkloadConfig, res: _Resolved) -> int:
        """Parameters with gradients and optimizer state: all, or only the adapters."""
        if config.finetune == "full":
            return res.total_params
        return self._adapter_params(config, res)

    def _weight_bytes(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Trainable weights as held (``_state_bytes``) for full fine-tuning; a frozen
        16/32/8/4-bit base plus the adapters for (Q)LoRA."""
        arch = res.arch
        held = _state_bytes(config, res)[0]
        if config.finetune == "full":
            return res.total_params * held
        adapters = self._adapter_params(config, res) * held
        if config.finetune == "qlora":
            layer_linears = arch.layers * sum(i * o for i, o in arch.layer_linear_shapes().values())
            rest = res.total_params - layer_linears
            return layer_linears * QLORA_BYTES_PER_PARAM + rest * _element_bytes("bf16") + adapters
        if config.finetune == "lora8":
            shapes = arch.layer_linear_shapes().values()
            layer_linears = arch.layers * sum(i * o for i, o in shapes)
            scales = arch.layers * sum(o for _, o in shapes) * INT8_SCALE_BYTES
            rest = res.total_params - layer_linears
            int8 = layer_linears * INT8_BYTES_PER_PARAM + scales
            return int8 + rest * _element_bytes("bf16") + adapters
        return res.total_params * _element_bytes(res.precision) + adapters

    def _reference_bytes(self, config: WorkloadConfig, res: _Resolved) -> float:
        """DPO's frozen reference copy, held and split like the weights (split at ZeRO-3 /
        FULL_SHARD, whole on every rank below: the frameworks shard it as they shard the
        policy, see ``reference_gathers``): a full model in the
        compute dtype (axolotl and LLaMA-Factory load it so; TRL's deep copy of a model
        loaded in fp32 would be twice that), or a (Q)LoRA run's frozen base again."""
        if config.finetune == "full":
            return res.total_params * _element_bytes(res.precision)
        return self._weight_bytes(config, res)

    def _activation_total(
        self, config: WorkloadConfig, res: _Resolved, loss_kernel: LossKernel
    ) -> float:
        """Saved activations (Korthikanti et al.) plus what the loss keeps of the logits,
        in bytes.

        Offloaded activations (``_offloads_activations``) leave the device but for what is
        in flight: with checkpointing, the layer being recomputed in the backward and the
        forward's stash of the last layer inputs (``OFFLOAD_FORWARD_STASHES``); without it,
        one layer's set (the tensors being copied back for the backward's current node). The
        logits stay: torchtune's ``get_act_offloading_ctx_manager`` opts the output head out
        of offloading and the loss runs outside the offloading context (v0.6.1
        ``torchtune/training/_activation_offloading.py``, ``recipes/*.py``); TRL's offloads
        the loss's saved tensors but keeps them in its stash for the backward
        (``OFFLOADS_LOSS``)."""
        full_layer, saved = self._layer_activation_bytes(config, res)
        layers = res.arch.layers
        if self._offloads_activations(config):
            offloader = config.activation_offloader or "torchtune"
            stash = min(layers, OFFLOAD_FORWARD_STASHES[offloader]) * saved
            kept = full_layer + (stash if config.gradient_checkpointing else 0.0)
        elif config.gradient_checkpointing:
            kept = layers * saved + full_layer
        else:
            kept = layers * full_layer
        return kept + self._logits_bytes(config, res, loss_kernel)

    @staticmethod
    def _layer_activation_bytes(config: WorkloadConfig, res: _Resolved) -> tuple[float, float]:
        """(one decoder layer's saved activations, what it keeps for the backward: the same,
        or its input alone under checkpointing) of one micro-batch, in bytes."""
        arch = res.arch
        s, b, h, a = config.seq_len, config.batch_size, arch.hidden, arch.heads
        per_token_hidden: float = KORTHIKANTI_LINEAR_BYTES
        if res.attention == "math":
            per_token_hidden += KORTHIKANTI_SCORE_BYTES * a * s / h
        scale = _element_bytes(res.precision) / 2.0
        full_layer = s * b * h * per_token_hidden * scale
        if config.gradient_checkpointing:
            return full_layer, CHECKPOINT_BYTES * s * b * h * scale
        return full_layer, full_layer

    def _offloads_activations(self, config: WorkloadConfig) -> bool:
        """Activation offloading runs: asked for, on a device that is not the host
        (torchtune's recipes refuse it elsewhere: "should only be True when training on CUDA
        or XPU"; ``_resolve`` warns)."""
        return config.activation_offloading and self.device.kind != "cpu"

    def _activation_copy_time(self, config: WorkloadConfig, res: _Resolved) -> float:
        """Seconds of one micro-batch's activation offload copies: what every layer keeps for
        the backward goes to the host in the forward and comes back in the backward, into and
        out of pinned memory (``OffloadActivations(use_pin_memory=True)``, v0.6.1
        ``torchtune/training/_activation_offloading.py``) at ``PINNED_H2D_GBS``."""
        saved = self._layer_activation_bytes(config, res)[1]
        return 2.0 * res.arch.layers * saved / (PINNED_H2D_GBS * GB)

    @staticmethod
    def _loss_saved_bytes(config: WorkloadConfig, res: _Resolved) -> float:
        """What the loss saves for its backward of one micro-batch, in bytes: cross-entropy's
        fp32 log-softmax over the vocabulary (``LOG_PROBS_BYTES_PER_ELEMENT``, every chunk's
        for a chunked loss), or for a fused linear cross-entropy the input-sized tensor it
        keeps (Liger's ``grad_input``, CutCrossEntropy's embeddings) and the per-token
        log-sum-exp. Parameters are never offloaded (``update_model_params``)."""
        tokens = config.batch_size * config.seq_len
        kind = loss_kernel_of(config)[0]
        hidden = res.arch.hidden * _element_bytes(res.precision)
        if kind == "fused":
            return tokens * (hidden + FUSED_CE_BYTES_PER_TOKEN)
        if kind == "chunked_nll":
            # each chunk's checkpoint keeps its slice of the sorted hidden states
            return tokens * hidden
        return tokens * res.arch.vocab * LOG_PROBS_BYTES_PER_ELEMENT

    @staticmethod
    def _logits_bytes(config: WorkloadConfig, res: _Resolved, loss_kernel: LossKernel) -> float:
        """What the loss keeps of the logits of one micro-batch at its peak, in bytes.

        The full logits (``LOGITS_BYTES_PER_ELEMENT``) unless the run uses a loss kernel
        that avoids them: a fused linear cross-entropy keeps a few hidden-sized copies per
        token; torchtune's chunked losses keep every chunk's fp32 log-probabilities and
        one chunk's transient, and ``CEWithChunkedOutputLoss`` also the model's 16-bit
        logit chunks, which the recipe frees only after the loss's forward (bd2a0fc7
        ``recipes/full_finetune_single_device.py`` ``_loss_step``: ``del outputs``).
        """
        tokens = config.batch_size * config.seq_len
        elements = tokens * res.arch.vocab
        kind, chunks = loss_kernel
        if kind == "fused":
            hidden = FUSED_CE_HIDDEN_COPIES * res.arch.hidden * _element_bytes(res.precision)
            return tokens * (hidden + FUSED_CE_BYTES_PER_TOKEN)
        if kind == "chunked":
            return elements * (
                LOG_PROBS_BYTES_PER_ELEMENT + CHUNK_TRANSIENT_BYTES_PER_ELEMENT / chunks
            )
        if kind == "chunked_output":
            per_element = _element_bytes(res.precision) + LOG_PROBS_BYTES_PER_ELEMENT
            return elements * (per_element + CHUNK_TRANSIENT_BYTES_PER_ELEMENT / chunks)
        if kind == "chunked_nll":
            return _chunked_nll_bytes(config, res, chunks)
        return elements * LOGITS_BYTES_PER_ELEMENT

    def _memory(self, config: WorkloadConfig, res: _Resolved) -> MemoryEstimate:
        """Peak memory of one rank: model states as the strategy splits and offloads them,
        plus activations.

        ZeRO stage 1 splits the optimizer state across the ranks, 2 also the gradients,
        3 also the parameters (DeepSpeed v0.18.2, docs/code-docs/source/zero3.rst; FSDP
        FULL_SHARD is stage 3, SHARD_GRAD_OP stage 2); a rank whose parameters are split
        or offloaded gathers ``GATHERED_LAYERS`` layers' full weights to compute them.
        DeepSpeed's ``offload_optimizer`` keeps optimizer state and gradient partitions in host
        memory (ZeRO-Offload, same page) and ``offload_param`` the parameters; FSDP's
        ``CPUOffload(offload_params=True)`` moves parameters and gradients and so runs the
        optimizer step on the host (torch v2.7.0, torch/distributed/fsdp/api.py). An FSDP
        run that accumulates under accelerate's ``no_sync`` holds full gradients in the
        compute dtype on the device instead of shards (``accumulates_unsharded_gradients``).
        """
        loss_kernel = loss_kernel_of(config)
        config = _as_run(config)
        sharded = config.strategy in ("fsdp", "deepspeed")
        n = config.world_size if sharded else 1
        stage = (3 if config.zero_stage is None else config.zero_stage) if sharded else 0
        trainable = self._trainable_params(config, res)
        _, grad_bytes, state_bytes = _state_bytes(config, res)
        weights = self._weight_bytes(config, res)
        if res.reference == "model":
            weights += self._reference_bytes(config, res)
        grads = trainable * grad_bytes
        if config.optimizer_in_backward and trainable:
            # each parameter's optimizer steps and frees its gradient from a post-accumulate-
            # grad hook, so one gradient is held at a time, the largest at worst (torchtune
            # v0.6.1 torchtune/training/memory.py register_optim_in_bwd_hooks: step(),
            # zero_grad() to None)
            grads = float(max(self._gradient_bytes(config, res)))
        optimizer = trainable * state_bytes
        if stage >= 1:
            optimizer /= n
        if stage >= 2:
            grads /= n
        if stage >= 3:
            weights /= n
        gathered = 0.0
        if (stage >= 3 and n > 1) or (sharded and config.offload_params):
            layer = res.layer_params / res.arch.layers
            gathered = GATHERED_LAYERS * layer * _element_bytes(res.precision)
        if sharded and config.offload_params:
            weights = 0.0
            if config.strategy == "fsdp":
                grads = optimizer = 0.0
        if sharded and config.offload_optimizer:
            optimizer = 0.0
            if config.strategy == "deepspeed":
                grads = 0.0
        if accumulates_unsharded_gradients(config):
            # no_sync keeps full gradients on the device until the last micro-batch reduces
            # them; the shards of the previous step are gone (the Trainer's zero_grad sets
            # them to None), so the peak, the last micro-batch's forward, holds the larger
            grads = max(grads, trainable * unsharded_gradient_bytes(res.precision))
        weights = (weights + gathered) / GB
        grads /= GB
        optimizer /= GB
        activations = self._activation_total(config, res, loss_kernel) / GB
        total = weights + grads + optimizer + activations + WORKSPACE_GB
        return MemoryEstimate(
            weights_gb=weights,
            grads_gb=grads,
            optimizer_gb=optimizer,
            activations_gb=activations,
            workspace_gb=WORKSPACE_GB,
            total_gb=total,
        )


def config_hash(config: WorkloadConfig) -> str:
    """First 16 hex digits of the SHA-256 of the config's JSON: stable across runs."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def ddp_buckets(sizes: list[int], cap_mb: int | None) -> list[int]:
    """The bytes of each gradient bucket DistributedDataParallel forms from tensors of
    ``sizes`` (in bucket order): a bucket closes once it reaches its limit, so a tensor
    larger than the limit fills one by itself (torch 2.13 ``compute_bucket_assignment_by_size``,
    ``torch/csrc/distributed/c10d/reducer.cpp``); unset, the first limit is 1 MiB and the
    rest 25 MiB, set, every limit is ``cap_mb`` MiB."""
    mib = 1024 * 1024
    limits = (
        [DDP_FIRST_BUCKET_MB * mib, DDP_BUCKET_CAP_MB * mib] if cap_mb is None else [cap_mb * mib]
    )
    buckets: list[int] = []
    current = 0
    for size in sizes:
        current += size
        if current >= limits[min(len(buckets), len(limits) - 1)]:
            buckets.append(current)
            current = 0
    if current:
        buckets.append(current)
    return buckets


def _fill(size: int, saturation: int) -> float:
    """Efficiency factor for a dimension below the size that saturates the device."""
    return min(1.0, size / saturation) ** UNDERFILL_EXPONENT


def _element_bytes(precision: str) -> float:
    """Bytes per element of activations and frozen weights: 4 in fp32/tf32, else 2."""
    return 4.0 if precision in ("fp32", "tf32") else 2.0


def _state_bytes(config: WorkloadConfig, res: _Resolved) -> tuple[float, float, float]:
    """Bytes per trainable parameter of its weight, gradient and optimizer state.

    DeepSpeed in 16-bit holds 16-bit weights and gradients and puts the fp32 master
    copy in the optimizer state (``MASTER_WEIGHT_BYTES``). Otherwise the weights are
    fp32 master weights under autocast, or 16-bit when the model is loaded and trained in
    its compute dtype (``pure_precision``); the gradients take the weights' dtype, and so
    does a torch optimizer's state (``STATE_IN_PARAM_DTYPE``).
    """
    state = float(OPTIMIZERS[res.optimizer].state_bytes)
    if config.strategy == "deepspeed" and res.precision not in ("fp32", "tf32"):
        return 2.0, 2.0, state + MASTER_WEIGHT_BYTES
    pure = config.pure_precision and res.precision not in ("fp32", "tf32")
    held = float(PURE_WEIGHT_BYTES if pure else MASTER_WEIGHT_BYTES)
    if res.optimizer in STATE_IN_PARAM_DTYPE:
        state *= held / MASTER_WEIGHT_BYTES
    return held, held, state


LossKernel = tuple[str, int]
"""How the loss treats the logits: (``full`` | ``fused`` | ``chunked`` |
``chunked_output`` | ``chunked_nll``, number of chunks, or for ``chunked_nll`` tokens per
chunk; 1 where not chunked)."""


def _chunked_nll_bytes(config: WorkloadConfig, res: _Resolved, chunk_tokens: int) -> float:
    """What TRL's ``chunked_nll`` holds at its peak for one micro-batch, in bytes: two
    hidden-sized copies per token (``CHUNKED_NLL_HIDDEN_COPIES``), one chunk's fp32
    log-probabilities and gradients (``CHUNKED_NLL_BYTES_PER_ELEMENT``), and the chunk's
    copies of the ``lm_head`` weight (``CHUNKED_NLL_HEAD_UPCAST_BYTES``). At short context
    the weight copies dominate, so a large vocabulary can hold more than the full logits
    would: a LoRA over Llama-3-8B (16-bit head) at 1,024 tokens keeps 1.1 GB of full
    logits, against 3.7 GB here."""
    arch = res.arch
    sixteen = res.precision not in ("fp32", "tf32")
    head_16bit = sixteen and (config.finetune != "full" or config.pure_precision)
    head = arch.vocab * arch.hidden
    upcast = head * (
        (CHUNKED_NLL_HEAD_UPCAST_BYTES if head_16bit else 0.0)
        + (_element_bytes(res.precision) if sixteen else 0.0)
    )
    tokens = config.batch_size * config.seq_len
    hidden = CHUNKED_NLL_HIDDEN_COPIES * arch.hidden * _element_bytes(res.precision)
    chunk = min(chunk_tokens, tokens) * arch.vocab * CHUNKED_NLL_BYTES_PER_ELEMENT
    return tokens * hidden + chunk + upcast


def loss_kernel_of(config: WorkloadConfig) -> LossKernel:
    """The loss kernel a config records it already uses (``extras``, set by the readers).

    ``fused``: axolotl's CutCrossEntropy plugin (``extras.cut_cross_entropy``), or Liger
    (``extras.use_liger_kernel``), whose ``apply_liger_kernel_to_<model>`` turns on
    ``fused_linear_cross_entropy`` by default (Liger-Kernel
    ``src/liger_kernel/transformers/monkey_patch.py``, e.g. ``apply_liger_kernel_to_llama``),
    as the HF Trainer's ``use_liger_kernel`` calls it with no kernel config (transformers
    ``src/transformers/integrations/liger.py`` ``apply_liger_kernel``) and LLaMA-Factory's
    ``enable_liger_kernel`` for pt/sft stages; axolotl's LigerPlugin only with
    ``liger_fused_linear_cross_entropy: true`` (axolotl
    ``src/axolotl/integrations/liger/args.py``: every ``liger_*`` defaults to None), which
    its reader records as ``extras.liger_fused_linear_cross_entropy: false`` otherwise.
    Only for supervised fine-tuning: a preference loss needs the logits, so Liger's
    forward materialises them without labels and LLaMA-Factory turns the fused loss off
    for other stages (``model_utils/liger_kernel.py``: ``require_logits``).
    ``chunked``/``chunked_output``: torchtune's ``LinearCrossEntropyLoss`` /
    ``CEWithChunkedOutputLoss`` (``extras.chunked_cross_entropy`` /
    ``extras.chunked_output_cross_entropy``: their ``num_output_chunks``).
    ``chunked_nll``: TRL's SFT ``loss_type: chunked_nll``, its default since v1.7.0
    (``extras.chunked_nll``: tokens per chunk). It replaces the model's forward, so it wins
    over a Liger patch a script applies itself (TRL v1.9.0 ``trl/trainer/sft_trainer.py``
    ``_patch_chunked_ce_lm_head``).
    """
    extras = config.extras
    if config.objective != "sft":
        return ("full", 1)
    for key, kind in (
        ("chunked_nll", "chunked_nll"),  # first: it replaces the forward a Liger patch sets
        ("chunked_cross_entropy", "chunked"),
        ("chunked_output_cross_entropy", "chunked_output"),
    ):
        chunks = extras.get(key)
        if isinstance(chunks, int) and not isinstance(chunks, bool) and chunks >= 1:
            return (kind, chunks)
    if extras.get("cut_cross_entropy") is True:
        return ("fused", 1)
    liger_flce = extras.get("liger_fused_linear_cross_entropy", True) is not False
    if extras.get("use_liger_kernel") is True and liger_flce:
        return ("fused", 1)
    return ("full", 1)


def _as_run(config: WorkloadConfig) -> WorkloadConfig:
    """The micro-batch as the model runs it: DPO concatenates each example's chosen and
    rejected sequences into one batch of twice the examples (TRL v0.19.0
    trl/trainer/dpo_trainer.py ``concatenated_forward``)."""
    if config.sequences_per_example == 1:
        return config
    return config.model_copy(
        update={
            "batch_size": config.batch_size * config.sequences_per_example,
            "objective": "sft",
            "reference": None,
        }
    )


def launch_description(config: WorkloadConfig) -> str:
    """How the memory estimate assumes the run is launched, in words."""
    if config.strategy not in ("fsdp", "deepspeed"):
        ranks = "one device" if config.world_size == 1 else f"{config.world_size} ranks"
        return f"{ranks}, every rank holding all weights, gradients and optimizer state"
    stage = 3 if config.zero_stage is None else config.zero_stage
    offloaded = [
        name
        for name, on in (
            ("parameters", config.offload_params),
            ("optimizer state", config.offload_optimizer),
        )
        if on
    ]
    where = f", {' and '.join(offloaded)} offloaded to the host" if offloaded else ""
    if accumulates_unsharded_gradients(config):
        where += (
            f", full gradients held across {config.grad_accum_steps} accumulated "
            "micro-batches (accelerate's no_sync)"
        )
    return f"{config.strategy} ZeRO stage {stage} over {config.world_size} ranks{where}"


def _shards(config: WorkloadConfig) -> int:
    """How many ways weights, gradients and optimizer state are split across ranks."""
    return config.world_size if config.strategy in ("fsdp", "deepspeed") else 1


def _stage(config: WorkloadConfig) -> int:
    """The ZeRO stage a sharded run is modelled with: 3 (FULL_SHARD) unless set."""
    return 3 if config.zero_stage is None else config.zero_stage


def _host_optimizer(config: WorkloadConfig) -> bool:
    """The optimizer steps on the host: DeepSpeed's ``offload_optimizer`` (CPU-Adam over
    host partitions), FSDP's CPU offload, where ``offload_params`` "offloads gradients to
    CPU as well, meaning that the optimizer step runs on CPU" (torch 2.13
    ``torch/distributed/fsdp/api.py`` ``CPUOffload``)."""
    if config.strategy == "deepspeed":
        return config.offload_optimizer
    if config.strategy == "fsdp":
        return config.offload_optimizer or config.offload_params
    return False


def sharded_collectives(config: WorkloadConfig) -> tuple[int, int]:
    """(parameter all-gathers, gradient reductions) per optimizer step of an FSDP /
    DeepSpeed run, each one collective per sharded unit, with ``A = grad_accum_steps``.

    Parameters. FULL_SHARD / ZeRO-3 (stage 3): ``2A``, one in the forward and one in the
    backward of every micro-batch. FSDP2 reshards after the forward
    (``reshard_after_forward`` True unless set) and after every backward, gradient sync or
    not (torch 2.13 ``torch/distributed/fsdp/_fully_shard/_fsdp_param_group.py``
    ``post_backward``: ``if not self.reduce_grads: if self.reshard_after_backward:
    self.reshard()``); FSDP1 frees FULL_SHARD parameters after the backward even under
    ``no_sync`` (``torch/distributed/fsdp/_runtime_utils.py`` ``_should_free_in_backward``);
    ZeRO-3 fetches each submodule's partitions in its pre-forward and pre-backward hooks
    (DeepSpeed v0.19.6 ``deepspeed/runtime/zero/parameter_offload.py``
    ``fetch_sub_module``). FSDP SHARD_GRAD_OP (stage 1-2, ``reshard_after_forward``
    False): gathered in the forward and kept for the backward; FSDP2 reshards them after
    every backward (as above), so ``A``; FSDP1 (``fsdp_version`` 1) under accelerate's
    ``no_sync`` keeps them until the synchronised backward, so 1: its post-forward frees
    only FULL_SHARD / HYBRID_SHARD parameters (torch 2.13 ``torch/distributed/fsdp/
    _runtime_utils.py`` ``_post_forward_reshard``), its post-backward frees the others
    only when gradients sync (``_should_free_in_backward``: ``state._sync_gradients or
    handle._sharding_strategy in RESHARD_AFTER_FORWARD_HANDLE_STRATEGIES``), and the next
    micro-batch's unshard finds them gathered and all-gathers nothing (``_flat_param.py``
    ``FlatParamHandle.unshard`` / ``needs_unshard``); accelerate enters the model's
    ``no_sync`` for FSDP1 (1.15.0.dev0 ``src/accelerate/accelerator.py`` ``no_sync``:
    ``getattr(model, "no_sync", context)``), the HF Trainer on every micro-batch but the
    last (transformers v5.25.0 ``trainer.py`` ``_inner_training_loop``: ``sync_context``).
    DeepSpeed ZeRO-1/2: 1, the updated 16-bit partitions after the step
    (``stage_1_and_2.py`` ``step`` → ``all_gather_dp_groups``). Stage 0: none.

    Gradients. FSDP, by ``training_loop``: under accelerate (the HF Trainer, open-instruct)
    1, at the accumulation boundary, as accelerate's ``accumulate`` skips the sync on the
    other micro-batches (FSDP1 ``no_sync``, FSDP2 ``set_requires_gradient_sync(False)``:
    accelerate 1.15.0.dev0 ``src/accelerate/accelerator.py`` ``no_sync``;
    ``sync_each_batch`` off by default, ``A`` where it is set, ``_skips_sync``; open-instruct ``open_instruct/finetune.py`` trains
    under ``accelerator.accumulate(model)``); ``A`` under torchtune's distributed recipes
    (v0.7.0 ``recipes/full_finetune_distributed.py``: a plain ``current_loss.backward()``
    per micro-batch) and LLaMA-Factory v1 (ff6d4d1 ``src/llamafactory/v1/core/
    base_trainer.py`` ``fit``: ``loss.backward()`` per micro-batch) and torchtitan
    (``torchtitan/train.py`` at 000204a, ``forward_backward_step``), none of which turns
    FSDP2's gradient sync off. DeepSpeed, whatever the loop: ``A`` from stage 2
    ("ZeRO stage >= 2 communicates during non gradient accumulation boundaries as well",
    v0.19.6 ``deepspeed/runtime/engine.py`` ``allreduce_gradients``), 1 for stages 0-1
    ("Communicate only at gradient accumulation boundaries").
    """
    accum = config.grad_accum_steps
    stage = _stage(config)
    if stage == 0:
        gathers = 0
    elif stage == 3:
        gathers = 2 * accum
    elif config.strategy == "fsdp":
        fsdp1_no_sync = config.fsdp_version == 1 and _skips_sync(config)
        gathers = 1 if fsdp1_no_sync else accum
    else:
        gathers = 1
    if config.strategy == "deepspeed":
        reductions = accum if stage >= 2 else 1
    else:
        reductions = 1 if _skips_sync(config) else accum
    return gathers, reductions


def _skips_sync(config: WorkloadConfig) -> bool:
    """accelerate's loop skips the gradient sync on all micro-batches but the last, unless
    ``sync_each_batch`` is set: ``accumulate`` then enters no ``no_sync`` (accelerate 1.16.0
    ``src/accelerate/accelerator.py`` ``accumulate``: ``allow_gradient_sync``), nor does the
    HF Trainer (transformers v5.25.0 ``trainer.py`` ``_inner_training_loop``, which reads it
    from ``accelerator_config``'s ``gradient_accumulation_kwargs``)."""
    return config.training_loop == "accelerate" and not config.sync_each_batch


def reference_gathers(config: WorkloadConfig, reference: str | None) -> int:
    """All-gathers per optimizer step of DPO's frozen reference copy (``reference: model``)
    under FSDP / DeepSpeed, one per sharded unit: ``A = grad_accum_steps`` where the copy is
    split at rest and freed after its forward (FULL_SHARD / ZeRO-3), else none.

    The frameworks shard the reference as they shard the policy: TRL wraps it with the
    run's FSDP plugin (v1.9.0 ``trl/models/utils.py`` ``prepare_fsdp``: FSDP1's
    ``sharding_strategy``, FSDP2's ``reshard_after_forward``) and initialises it with the
    run's DeepSpeed config at ZeRO-3, or at stage 0, whole on every rank, when the policy
    is at stage 1-2 (``prepare_deepspeed``: "If ZeRO-3 is used, we shard both the active
    and reference model"), both called from ``trl/trainer/dpo_trainer.py``; LLaMA-Factory's
    DPO trainer calls the same (ff6d4d1 ``src/llamafactory/train/dpo/trainer.py``) and
    torchtune's ``full_dpo_distributed`` shards it with the policy's
    ``fsdp_reshard_after_forward`` (bd2a0fc7 ``recipes/full_dpo_distributed.py``
    ``_setup_reference_model``). Its forward runs once per micro-batch without a backward:
    FULL_SHARD / ZeRO-3 gather each unit in the pre-forward and free it after (torch 2.13
    FSDP2 ``FSDPParamGroup.post_forward`` → ``reshard``; FSDP1 ``_post_forward_reshard``;
    DeepSpeed v0.19.6 ``parameter_offload.py`` ``post_sub_module_forward_function`` →
    ``release_sub_module``). SHARD_GRAD_OP frees parameters only after a backward, which
    the reference never runs, so it stays gathered after its first forward: none per step.
    """
    if reference != "model" or config.strategy not in ("fsdp", "deepspeed"):
        return 0
    return config.grad_accum_steps if _stage(config) == 3 else 0


def reduced_gradient_bytes(config: WorkloadConfig, precision: str) -> float:
    """Bytes per trainable parameter an FSDP / DeepSpeed gradient reduction moves.

    DeepSpeed reduces in its ``communication_data_type`` (``WorkloadConfig.
    communication_data_type``, read from the DeepSpeed config), unset by default and then
    fp16 or bf16 when that mode is enabled, fp32 otherwise (v0.19.6 ``deepspeed/runtime/
    engine.py`` ``communication_data_type``, passed to the ZeRO optimizers). FSDP reduces
    in the ``reduce_dtype`` of its mixed-precision policy: accelerate sets it to the
    mixed-precision dtype (1.15.0.dev0 ``src/accelerate/utils/dataclasses.py``
    ``FullyShardedDataParallelPlugin.set_mixed_precision``: ``{"param_dtype": dtype,
    "reduce_dtype": dtype}``, called from ``state.py`` when mixed precision is on);
    torchtune passes no policy (v0.7.0 ``torchtune/training/_distributed.py``
    ``shard_model``), so FSDP2 reduces the gradients in the parameters' dtype (torch 2.13
    ``MixedPrecisionPolicy.reduce_dtype`` default None), the ``dtype`` the recipe loads
    the model in; LLaMA-Factory v1 asks for float32 (ff6d4d1 ``src/llamafactory/v1/
    plugins/trainer_plugins/distributed/fsdp2.py`` ``get_mp_policy``), torchtitan too
    (``training.mixed_precision_reduce`` default ``float32``, its only choice, at 0011fb9
    ``torchtitan/config_manager.py``).
    """
    if config.strategy == "deepspeed" and config.communication_data_type is not None:
        return _element_bytes(config.communication_data_type)
    if config.strategy == "fsdp" and config.training_loop in ("llamafactory-v1", "torchtitan"):
        return 4.0
    return _element_bytes(precision)


def accumulates_unsharded_gradients(config: WorkloadConfig) -> bool:
    """Whether each rank of an FSDP run holds its trainable parameters' full, unsharded
    gradients between micro-batches, instead of the shards that stage 2-3 otherwise keep.

    That is the case under accelerate's loop with ``grad_accum_steps`` > 1: the HF Trainer
    runs every micro-batch but the last inside ``accelerator.no_sync(model)`` unless
    ``sync_each_batch`` is set or the run uses DeepSpeed (transformers v5.25.0
    ``src/transformers/trainer.py`` ``_inner_training_loop``: ``sync_context``), as
    ``accelerator.accumulate`` does for open-instruct; accelerate turns that into FSDP2's
    ``set_requires_gradient_sync(False)`` or FSDP1's ``no_sync()`` (1.16.0
    ``src/accelerate/accelerator.py`` ``no_sync``). FSDP1: "FSDP will accumulate the full
    model gradients (instead of gradient shards) until the eventual sync", not offloaded to
    the CPU before it (torch 2.13 ``torch/distributed/fsdp/fully_sharded_data_parallel.py``
    ``no_sync``); its post-backward hook returns before the reduce-scatter, leaving the
    unsharded gradient in ``flat_param.grad`` (``_runtime_utils.py`` ``_post_backward_hook``,
    ``_post_backward_final_callback``: "`.grad` remains the unsharded gradient"). FSDP2's
    ``post_backward`` without ``reduce_grads`` reshards the parameters but keeps each
    unsharded parameter's gradient, to be added to the next one
    (``_fully_shard/_fsdp_param_group.py`` ``post_backward``; ``_fsdp_param.py``
    ``unsharded_accumulated_grad``, ``accumulate_unsharded_grad_if_needed``), for a
    ``reshard_after_backward`` parameter too. torchtune, LLaMA-Factory v1 and torchtitan
    reduce-scatter on every backward (``sharded_collectives``) and keep shards; DeepSpeed
    ZeRO-2/3 reduce and partition gradients on every micro-batch whatever the loop (v0.19.6
    ``deepspeed/runtime/engine.py`` ``allreduce_gradients``), and accelerate's ``no_sync``
    does nothing for it from stage 2.
    """
    return (
        config.strategy == "fsdp"
        and config.training_loop == "accelerate"
        and not config.sync_each_batch
        and config.grad_accum_steps > 1
        and _stage(config) >= 2
    )


def unsharded_gradient_bytes(precision: str) -> float:
    """Bytes per trainable parameter of the unsharded gradient that FSDP accumulates under
    ``no_sync`` (``accumulates_unsharded_gradients``): the dtype the backward computes
    gradients in, the compute dtype. FSDP1's flat parameter is unsharded in its
    mixed-precision ``param_dtype`` (the load dtype without a policy) and its ``.grad``
    takes that dtype (torch 2.13 ``torch/distributed/fsdp/_flat_param.py``
    ``_fwd_bwd_param_dtype``); FSDP2 keeps ``unsharded_param.grad`` in ``param_dtype``, or
    casts it to ``reduce_dtype`` where the two differ (``_fsdp_param.py``
    ``to_accumulated_grad_if_needed``). accelerate gives both the mixed-precision dtype
    (1.16.0 ``src/accelerate/utils/dataclasses.py`` ``set_mixed_precision``:
    ``{"param_dtype": dtype, "reduce_dtype": dtype}``) and no policy without mixed precision.
    """
    return _element_bytes(precision)


def offload_copy_bytes(
    config: WorkloadConfig, trainable_params: int, element_bytes: float, gathered_bytes: float
) -> float:
    """Bytes one rank copies between host and device per optimizer step for offload.

    A host optimizer (``_host_optimizer``) receives the rank's gradient partition after
    each reduction (DeepSpeed accumulates offloaded gradients on the host every micro-step
    from stage 2; FSDP's CPU offload moves the reduced gradients at the boundary) and
    sends back the updated ``element_bytes`` parameter partition once. Offloaded
    parameters (``offload_params``) are copied to the device before each all-gather (the
    rank's ``1/n`` of ``gathered_bytes``), which then carries the updated ones too.
    """
    if config.strategy not in ("fsdp", "deepspeed"):
        return 0.0
    shards = config.world_size
    gathers, reductions = sharded_collectives(config)
    moved = 0.0
    if config.offload_params:
        moved += gathers * gathered_bytes / shards
    if _host_optimizer(config):
        moved += reductions * trainable_params * GRAD_BYTES / shards
        if not config.offload_params:
            moved += trainable_params * element_bytes / shards
    return moved


def _lora_target_shapes(
    config: WorkloadConfig, arch: ModelArch, warnings: list[str]
) -> tuple[tuple[int, int], ...]:
    """(in, out) of each adapted linear in one layer; empty for full fine-tuning."""
    if config.finetune == "full":
        return ()
    shapes = arch.layer_linear_shapes()
    targets = {t.lower() for t in config.lora_targets}
    if targets & LORA_ALL_LINEAR:
        return tuple(shapes.values())
    matched = tuple(shape for name, shape in shapes.items() if name in targets)
    unmatched = sorted(targets - set(shapes))
    if unmatched:
        warnings.append(
            f"LoRA targets {unmatched} match no linear of {arch.name}; known: {', '.join(shapes)}"
        )
    return matched
