"""Decoder architectures: published presets and explicit dims.

Both runners need the same facts about a model: the analytic model counts FLOPs
and bytes from them, the torch runner builds the network from them. Preset dims
are the `config.json` fields of the published checkpoints on the Hugging Face Hub
(for example https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json); parameter
counts are computed, never typed in.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelArch(BaseModel):
    """Dims of a Llama-style decoder (RMSNorm, RoPE, GQA attention, gated MLP).

    Each dim has an upper bound far beyond any published model, so that a typo
    (a million layers) is refused naming its field instead of being modelled.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    layers: int = Field(gt=0, le=10_000)
    hidden: int = Field(gt=0, le=1_000_000)
    intermediate: int = Field(gt=0, le=10_000_000)
    heads: int = Field(gt=0, le=10_000)
    kv_heads: int | None = Field(default=None, gt=0, le=10_000)
    vocab: int = Field(gt=0, le=10_000_000)
    head_dim: int | None = Field(default=None, gt=0, le=100_000)
    tied_embeddings: bool = False
    qkv_bias: bool = False

    @model_validator(mode="after")
    def _check_heads(self) -> ModelArch:
        kv = self.kv_heads if self.kv_heads is not None else self.heads
        if self.heads % kv:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        if self.head_dim is None and self.hidden % self.heads:
            raise ValueError(
                f"hidden ({self.hidden}) is not divisible by heads ({self.heads}); give head_dim"
            )
        return self

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads

    def layer_linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear in one block, keyed by the HF module name."""
        q = self.heads * self.dim_per_head
        kv = self.n_kv_heads * self.dim_per_head
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    @property
    def params_per_layer(self) -> int:
        shapes = self.layer_linear_shapes()
        weights = sum(i * o for i, o in shapes.values())
        bias = (shapes["q_proj"][1] + 2 * shapes["k_proj"][1]) if self.qkv_bias else 0
        norms = 2 * self.hidden
        return weights + bias + norms

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        """All parameters, tied embeddings counted once (the published count)."""
        return (
            self.layers * self.params_per_layer
            + self.embedding_params
            + self.lm_head_params
            + self.hidden
        )

    @property
    def matmul_params(self) -> int:
        """Parameters that take part in matmuls: N in the 6N FLOPs rule.

        The input embedding is a lookup, not a matmul (torchtitan excludes it);
        the LM head is a real GEMM even when its weight is tied.
        """
        return self.layers * self.params_per_layer + self.vocab * self.hidden


PRESETS: dict[str, ModelArch] = {
    arch.name: arch
    for arch in (
        ModelArch(
            name="llama-3-8b",
            layers=32,
            hidden=4096,
            intermediate=14336,
            heads=32,
            kv_heads=8,
            vocab=128256,
        ),
        ModelArch(
            name="llama-3.1-8b",
            layers=32,
            hidden=4096,
            intermediate=14336,
            heads=32,
            kv_heads=8,
            vocab=128256,
        ),
        ModelArch(
            name="llama-3.2-1b",
            layers=16,
            hidden=2048,
            intermediate=8192,
            heads=32,
            kv_heads=8,
            vocab=128256,
            tied_embeddings=True,
        ),
        # meta-llama/Llama-3.2-3B config.json, as copied verbatim in
        # huggingface.co/mlx-community/Llama-3.2-3B-bf16 (and the torchtune llama3_2_3b builder)
        ModelArch(
            name="llama-3.2-3b",
            layers=28,
            hidden=3072,
            intermediate=8192,
            heads=24,
            kv_heads=8,
            vocab=128256,
            tied_embeddings=True,
        ),
        ModelArch(
            name="llama-3.1-70b",
            layers=80,
            hidden=8192,
            intermediate=28672,
            heads=64,
            kv_heads=8,
            vocab=128256,
        ),
        ModelArch(
            name="qwen2.5-0.5b",
            layers=24,
            hidden=896,
            intermediate=4864,
            heads=14,
            kv_heads=2,
            vocab=151936,
            tied_embeddings=True,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2.5-7b",
            layers=28,
            hidden=3584,
            intermediate=18944,
            heads=28,
            kv_heads=4,
            vocab=152064,
            qkv_bias=True,
        ),
        ModelArch(
            name="mistral-7b",
            layers=32,
            hidden=4096,
            intermediate=14336,
            heads=32,
            kv_heads=8,
            vocab=32000,
        ),
        # mistralai/Mistral-7B-v0.3 config.json, as copied in huggingface.co/unsloth/
        # mistral-7b-v0.3 (_name_or_path mistralai/Mistral-7B-v0.3): v0.2 with a 32768 vocab
        ModelArch(
            name="mistral-7b-v0.3",
            layers=32,
            hidden=4096,
            intermediate=14336,
            heads=32,
            kv_heads=8,
            vocab=32768,
        ),
        ModelArch(
            name="gemma-2-2b",
            layers=26,
            hidden=2304,
            intermediate=9216,
            heads=8,
            kv_heads=4,
            head_dim=256,
            vocab=256000,
            tied_embeddings=True,
        ),
        ModelArch(
            name="phi-3-mini",
            layers=32,
            hidden=3072,
            intermediate=8192,
            heads=32,
            kv_heads=32,
            vocab=32064,
        ),
    )
}

_ALIASES: dict[str, str] = {
    "meta-llama-3-8b": "llama-3-8b",
    "llama3-8b": "llama-3-8b",
    "llama-3.1-8b": "llama-3.1-8b",
    "meta-llama-3.1-8b": "llama-3.1-8b",
    "llama-3.2-1b": "llama-3.2-1b",
    "llama-3.1-70b": "llama-3.1-70b",
    "meta-llama-3.1-70b": "llama-3.1-70b",
    "qwen2.5-0.5b": "qwen2.5-0.5b",
    "qwen2.5-7b": "qwen2.5-7b",
    "mistral-7b": "mistral-7b",
    "mistral-7b-v0.1": "mistral-7b",
    "mistral-7b-v0.2": "mistral-7b",
    "gemma-2-2b": "gemma-2-2b",
    "phi-3-mini": "phi-3-mini",
    "phi-3-mini-4k": "phi-3-mini",
}

_TAGS = re.compile(r"-(instruct|it|hf|chat|base)(?=-|$)")
"""Variant tags that do not change the dims, wherever they stand: Mistral puts the
version after them (``Mistral-7B-Instruct-v0.2``)."""
_SUFFIXES = re.compile(r"(-unsloth|-bnb-4bit)+$")


def lookup(name: str) -> ModelArch | None:
    """The preset for a preset name or a Hugging Face model id, or None.

    Matches case-insensitively on the id's last path part, ignoring the org,
    variant tags (``-Instruct``, ``-it``, ``-hf``, ``-chat``, ``-base``) and
    quantized-upload suffixes (``-bnb-4bit``, ``-unsloth-bnb-4bit``).
    """
    key = name.strip().lower().rsplit("/", 1)[-1]
    key = _SUFFIXES.sub("", _TAGS.sub("", key))
    if key in PRESETS:
        return PRESETS[key]
    alias = _ALIASES.get(key)
    return PRESETS[alias] if alias else None
