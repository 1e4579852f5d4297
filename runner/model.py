"""A Llama-style decoder in one file, read top-down: RMSNorm, rotary embeddings,
grouped-query attention, SwiGLU MLP, the block, the model.

The torch runner trains this network with the dims of the workload's
architecture (``ModelArch``) and random weights: throughput depends on the
shapes and the kernels, not on the values. It follows the Hugging Face Llama
implementation in what it computes and nanoGPT in how it is written:

- https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/modeling_llama.py
- https://github.com/karpathy/nanoGPT/blob/master/model.py

The model is built on the meta device and materialised directly on the target
device (``build``), so an 8B model never makes a round trip through host memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from pytest_goblin.catalogue.architectures import ModelArch

ROPE_THETA = 10_000.0
"""Rotary base; it changes the values of cos/sin, never the cost."""

NORM_EPS = 1e-5
INIT_STD = 0.02
"""Weights ~ N(0, 0.02), as HF's ``initializer_range``: cheap, and trains stably."""

PEFT_DEFAULT_ALPHA = 8
"""PEFT's ``LoraConfig.lora_alpha`` default, used when the workload gives none."""

ATTENTION_IMPLS = ("eager", "sdpa", "flash")

FlashAttnFunc = Callable[..., torch.Tensor]


def flash_attn() -> tuple[FlashAttnFunc, str] | None:
    """The flash-attn package's ``flash_attn_func`` and its version, when it is installed.

    "flash" means this package when it is there, as it does for Hugging Face's
    ``flash_attention_2`` (on ROCm its CK or Triton build, not the AOTriton kernel behind
    SDPA's flash backend). Its API, flash-attention v2.7.4
    flash_attn/flash_attn_interface.py: ``flash_attn_func(q, k, v, dropout_p=0.0,
    softmax_scale=None, causal=False, ...)`` with q (batch, seqlen, nheads, headdim) and
    k, v (batch, seqlen, nheads_k, headdim), grouped-query heads taken as they are when
    nheads is a multiple of nheads_k; fp16 and bf16 only, head_dim at most 256
    (csrc/flash_attn/flash_api.cpp). None when it is absent or does not import (a build
    for another torch), and SDPA's flash backend runs instead, as the run's label says.
    """
    try:
        import flash_attn as package
        from flash_attn import flash_attn_func
    except (ImportError, OSError):
        return None
    return flash_attn_func, str(getattr(package, "__version__", "unknown version"))


@dataclass(frozen=True)
class ModelOptions:
    """How to build the network beyond its dims: the knobs a workload sets."""

    attention: str = "sdpa"  # eager | sdpa | flash
    checkpointing: bool = False  # recompute each block's forward in the backward
    lora_rank: int | None = None  # None: full fine-tuning
    lora_alpha: int | None = None
    lora_targets: tuple[str, ...] = ()  # linear names (q_proj, ...) or all-linear
    layers: int | None = None  # build fewer decoder blocks than the architecture has


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in fp32 whatever the input dtype (as HF does)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + NORM_EPS)
        return self.weight * x32.to(x.dtype)


def rope_tables(
    seq_len: int, head_dim: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position x frequency, each (T, head_dim), in fp32."""
    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len, device=device).float(), inv_freq)  # (T, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hd): the rotate-half layout
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hd) queries or keys by their position (rotate-half form)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class LoRALinear(nn.Module):
    """A frozen linear plus a trainable low-rank update: W x + (alpha/r) B A x.

    B starts at zero (as in PEFT), so the adapted model starts as the base one.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: int) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.empty(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads and rotary positions."""

    def __init__(self, arch: ModelArch, impl: str) -> None:
        super().__init__()
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl {impl!r} is not one of {', '.join(ATTENTION_IMPLS)}")
        self.impl = impl
        found = flash_attn() if impl == "flash" else None
        self.flash_attn_func = found[0] if found else None
        self.n_head = arch.heads
        self.n_kv_head = arch.n_kv_heads
        self.head_dim = arch.dim_per_head
        q_dim, kv_dim = arch.heads * self.head_dim, arch.n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(arch.hidden, q_dim, bias=arch.qkv_bias)
        self.k_proj = nn.Linear(arch.hidden, kv_dim, bias=arch.qkv_bias)
        self.v_proj = nn.Linear(arch.hidden, kv_dim, bias=arch.qkv_bias)
        self.o_proj = nn.Linear(q_dim, arch.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        hd = self.head_dim
        q = self.q_proj(x).view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_head, hd).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_head, hd).transpose(1, 2)
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        if self.flash_attn_func is not None:
            # flash-attn takes (B, T, heads, hd), and the unrepeated k/v heads (GQA) itself
            y = self.flash_attn_func(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True
            )
            return self.o_proj(y.reshape(B, T, self.n_head * self.head_dim))
        # each group of query heads shares one key/value head (HF's repeat_kv)
        groups = self.n_head // self.n_kv_head
        k = k.repeat_interleave(groups, dim=1)  # (B, nh, T, hd)
        v = v.repeat_interleave(groups, dim=1)
        if self.impl == "eager":
            y = self._eager(q, k, v)
        elif self.impl == "flash":
            # SDPA's flash backend (no flash-attn package); only the flash kernel may run:
            # an unavailable one raises, never falls back
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, nh*hd)
        return self.o_proj(y)

    def _eager(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(QK^T / sqrt(d)) V with the (T, T) score matrix written out, as HF eager does."""
        T = q.shape[-2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
        return att @ v  # (B, nh, T, hd)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, arch: ModelArch) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(arch.hidden, arch.intermediate, bias=False)
        self.up_proj = nn.Linear(arch.hidden, arch.intermediate, bias=False)
        self.down_proj = nn.Linear(arch.intermediate, arch.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, arch: ModelArch, attention: str) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(arch.hidden)
        self.attn = Attention(arch, attention)
        self.mlp_norm = RMSNorm(arch.hidden)
        self.mlp = MLP(arch)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    """Token embedding, ``layers`` blocks, final norm and LM head; returns the mean loss."""

    rope_cos: torch.Tensor  # buffers (register_buffer below): tensors, not submodules
    rope_sin: torch.Tensor

    def __init__(self, arch: ModelArch, seq_len: int, options: ModelOptions) -> None:
        super().__init__()
        self.checkpointing = options.checkpointing
        n_layers = arch.layers if options.layers is None else options.layers
        # _weight skips the N(0, 1) init nn.Embedding would run (init_weights does it once)
        embedding = torch.empty(arch.vocab, arch.hidden)
        self.embed = nn.Embedding(arch.vocab, arch.hidden, _weight=embedding)
        self.blocks = nn.ModuleList(Block(arch, options.attention) for _ in range(n_layers))
        self.norm = RMSNorm(arch.hidden)
        # a tied head reuses the embedding matrix (Llama-3.2, Qwen2.5-0.5B, Gemma)
        self.lm_head = (
            None if arch.tied_embeddings else nn.Linear(arch.hidden, arch.vocab, bias=False)
        )
        self.register_buffer("rope_cos", torch.empty(seq_len, arch.dim_per_head), persistent=False)
        self.register_buffer("rope_sin", torch.empty(seq_len, arch.dim_per_head), persistent=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            if self.checkpointing and self.training:
                # non-reentrant: works with frozen inputs (LoRA) and with torch.compile
                x = checkpoint(block, x, self.rope_cos, self.rope_sin, use_reentrant=False)
            else:
                x = block(x, self.rope_cos, self.rope_sin)
        x = self.norm(x)
        head = self.embed.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head)  # (B, T, vocab)
        # HF causal-LM heads upcast the logits to fp32 for the loss
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """Fill every tensor in place on its device: N(0, 0.02) weights, unit norms,
        zero biases, PEFT's adapter init (A Kaiming-uniform, B zero), rotary tables."""
        torch.manual_seed(seed)
        params = dict(self.named_parameters())
        adapters = [n for n in params if n.endswith(("lora_a", "lora_b"))]
        # the base first, so that it is the same with and without adapters
        for name in [n for n in params if n not in adapters] + adapters:
            param = params[name]
            if name.endswith("lora_a"):
                nn.init.kaiming_uniform_(param, a=math.sqrt(5))
            elif name.endswith(("lora_b", "bias")):
                param.zero_()
            elif param.dim() == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, INIT_STD)
        seq_len, head_dim = self.rope_cos.shape
        cos, sin = rope_tables(seq_len, head_dim, self.rope_cos.device)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)


LORA_ALL_LINEAR = frozenset({"all-linear", "all_linear", "all"})


def add_lora(model: Decoder, rank: int, alpha: int, targets: tuple[str, ...]) -> list[str]:
    """Freeze the model and wrap the targeted linears of every block in LoRALinear.

    Returns the targets that match no linear (for a warning); a target list that
    matches nothing at all is an error, since there would be nothing to train.
    """
    model.requires_grad_(False)
    names = {t.lower() for t in targets}
    every = bool(names & LORA_ALL_LINEAR)
    found: set[str] = set()
    blocks = [block for block in model.blocks if isinstance(block, Block)]  # all of them
    for block in blocks:
        for parent in (block.attn, block.mlp):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear) and (every or child_name in names):
                    setattr(parent, child_name, LoRALinear(child, rank, alpha))
                    found.add(child_name)
    unmatched = sorted(names - found - LORA_ALL_LINEAR)
    if not found and model.blocks:
        raise ValueError(f"LoRA targets {sorted(names)} match no linear layer of the model")
    return unmatched


def build(
    arch: ModelArch,
    seq_len: int,
    options: ModelOptions,
    device: torch.device,
    frozen_dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> tuple[Decoder, list[str]]:
    """The model on ``device``, ready to train, and any warnings about its LoRA targets.

    Every module is created on the meta device (no memory), LoRA wrappers are
    added and the frozen base is cast to ``frozen_dtype`` while still on meta,
    then the storage is allocated once on the device and initialised there.
    Trainable parameters stay fp32 (mixed precision keeps fp32 master weights).
    """
    with torch.device("meta"):
        model = Decoder(arch, seq_len, options)
    warnings: list[str] = []
    if options.lora_rank is not None:
        alpha = options.lora_alpha or PEFT_DEFAULT_ALPHA
        unmatched = add_lora(model, options.lora_rank, alpha, options.lora_targets)
        if unmatched:
            warnings.append(
                f"LoRA targets {unmatched} match no linear; known: "
                f"{', '.join(arch.layer_linear_shapes())}"
            )
        for param in model.parameters():
            if not param.requires_grad:
                param.data = param.data.to(frozen_dtype)
    model = model.to_empty(device=device)
    model.init_weights(seed)
    return model, warnings
