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
        # The first nine: litgpt at 26857050, litgpt/config.py "Llama-3-8B", "Llama-3.1-8B",
        # "Llama-3.2-1B", "Llama-3.1-70B", "Qwen2.5-0.5B", "Qwen2.5-7B",
        # "Mistral-7B-Instruct-v0.2", "Gemma-2-2b", "Phi-3-mini-4k-instruct", each transcribed
        # from the checkpoint's config.json on the Hub (the URL above each entry there); the
        # tied embeddings are the ones the published parameter counts need
        # (tests/unit/runner/test_architectures.py).
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
        # The presets below are each checkpoint's config.json on the Hugging Face Hub
        # (https://huggingface.co/<id>/blob/main/config.json, <id> named above each group),
        # cross-checked field by field against the builder of the same model in torchtune
        # at bd2a0fc7 (v0.6.1 + 220 commits), torchtune/models/<family>/_model_builders.py.
        #
        # meta-llama/Llama-2-{7b,13b,70b}-hf; torchtune llama2/_model_builders.py llama2_7b
        # (intermediate from scale_hidden_dim_for_mlp(4096) = 11008), llama2_13b, llama2_70b
        ModelArch(
            name="llama-2-7b",
            layers=32,
            hidden=4096,
            intermediate=11008,
            heads=32,
            kv_heads=32,
            vocab=32000,
        ),
        ModelArch(
            name="llama-2-13b",
            layers=40,
            hidden=5120,
            intermediate=13824,
            heads=40,
            kv_heads=40,
            vocab=32000,
        ),
        ModelArch(
            name="llama-2-70b",
            layers=80,
            hidden=8192,
            intermediate=28672,
            heads=64,
            kv_heads=8,
            vocab=32000,
        ),
        # meta-llama/Meta-Llama-3-70B, meta-llama/Llama-3.3-70B-Instruct,
        # meta-llama/Llama-3.1-405B; torchtune llama3/_model_builders.py llama3_70b,
        # llama3_3/_model_builders.py llama3_3_70b (= llama3_1_70b), llama3_1 llama3_1_405b
        ModelArch(
            name="llama-3-70b",
            layers=80,
            hidden=8192,
            intermediate=28672,
            heads=64,
            kv_heads=8,
            vocab=128256,
        ),
        ModelArch(
            name="llama-3.3-70b",
            layers=80,
            hidden=8192,
            intermediate=28672,
            heads=64,
            kv_heads=8,
            vocab=128256,
        ),
        ModelArch(
            name="llama-3.1-405b",
            layers=126,
            hidden=16384,
            intermediate=53248,
            heads=128,
            kv_heads=8,
            vocab=128256,
        ),
        # TinyLlama/TinyLlama_v1.1 (and TinyLlama-1.1B-Chat-v1.0, same dims); torchtune's
        # recipes/configs/llama2/1B_qat_single_device.yaml builds it with llama2(num_layers=22,
        # num_heads=32, num_kv_heads=4, embed_dim=2048), intermediate 5632
        ModelArch(
            name="tinyllama-1.1b",
            layers=22,
            hidden=2048,
            intermediate=5632,
            heads=32,
            kv_heads=4,
            vocab=32000,
        ),
        # codellama/CodeLlama-{7b,13b,34b}-hf (Llama 2 layout; 7B and 13B add 16 infilling
        # tokens to the vocabulary, the -Python variants do not and are not these presets);
        # cross-checked with tinygrad examples/llama.py MODEL_PARAMS["code"]
        ModelArch(
            name="codellama-7b",
            layers=32,
            hidden=4096,
            intermediate=11008,
            heads=32,
            kv_heads=32,
            vocab=32016,
        ),
        ModelArch(
            name="codellama-13b",
            layers=40,
            hidden=5120,
            intermediate=13824,
            heads=40,
            kv_heads=40,
            vocab=32016,
        ),
        ModelArch(
            name="codellama-34b",
            layers=48,
            hidden=8192,
            intermediate=22016,
            heads=64,
            kv_heads=8,
            vocab=32000,
        ),
        # Qwen/Qwen2-{0.5B,1.5B,7B}: q/k/v biases, small models tie their embeddings;
        # torchtune qwen2/_model_builders.py qwen2_0_5b, qwen2_1_5b, qwen2_7b
        ModelArch(
            name="qwen2-0.5b",
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
            name="qwen2-1.5b",
            layers=28,
            hidden=1536,
            intermediate=8960,
            heads=12,
            kv_heads=2,
            vocab=151936,
            tied_embeddings=True,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2-7b",
            layers=28,
            hidden=3584,
            intermediate=18944,
            heads=28,
            kv_heads=4,
            vocab=152064,
            qkv_bias=True,
        ),
        # Qwen/Qwen2.5-{1.5B,3B,14B,32B,72B}; torchtune qwen2_5/_model_builders.py
        # qwen2_5_1_5b_*, qwen2_5_3b, qwen2_5_14b_*, qwen2_5_32b_*, qwen2_5_72b_*
        ModelArch(
            name="qwen2.5-1.5b",
            layers=28,
            hidden=1536,
            intermediate=8960,
            heads=12,
            kv_heads=2,
            vocab=151936,
            tied_embeddings=True,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2.5-3b",
            layers=36,
            hidden=2048,
            intermediate=11008,
            heads=16,
            kv_heads=2,
            vocab=151936,
            tied_embeddings=True,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2.5-14b",
            layers=48,
            hidden=5120,
            intermediate=13824,
            heads=40,
            kv_heads=8,
            vocab=152064,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2.5-32b",
            layers=64,
            hidden=5120,
            intermediate=27648,
            heads=40,
            kv_heads=8,
            vocab=152064,
            qkv_bias=True,
        ),
        ModelArch(
            name="qwen2.5-72b",
            layers=80,
            hidden=8192,
            intermediate=29568,
            heads=64,
            kv_heads=8,
            vocab=152064,
            qkv_bias=True,
        ),
        # Qwen/Qwen3-{0.6B,1.7B,4B,8B,14B,32B}: head_dim 128 whatever the width (so
        # heads x head_dim != hidden for 0.6B, 4B, 32B...), no q/k/v biases, embeddings tied
        # up to 4B; the per-head q/k RMSNorm weights (2 x 128 per layer) are not counted.
        # torchtune qwen3/_model_builders.py qwen3_0_6b_* ... qwen3_14b_*, qwen3_32b
        ModelArch(
            name="qwen3-0.6b",
            layers=28,
            hidden=1024,
            intermediate=3072,
            heads=16,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
            tied_embeddings=True,
        ),
        ModelArch(
            name="qwen3-1.7b",
            layers=28,
            hidden=2048,
            intermediate=6144,
            heads=16,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
            tied_embeddings=True,
        ),
        ModelArch(
            name="qwen3-4b",
            layers=36,
            hidden=2560,
            intermediate=9728,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
            tied_embeddings=True,
        ),
        ModelArch(
            name="qwen3-8b",
            layers=36,
            hidden=4096,
            intermediate=12288,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
        ),
        ModelArch(
            name="qwen3-14b",
            layers=40,
            hidden=5120,
            intermediate=17408,
            heads=40,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
        ),
        ModelArch(
            name="qwen3-32b",
            layers=64,
            hidden=5120,
            intermediate=25600,
            heads=64,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
        ),
        # google/gemma-{2b,7b}: head_dim 256 (7B: 16 x 256 = 4096 != hidden 3072), 2B is
        # multi-query (one kv head), embeddings always tied; torchtune gemma/_model_builders.py
        # gemma_2b, gemma_7b (TiedLinear output in gemma/_component_builders.py)
        ModelArch(
            name="gemma-2b",
            layers=18,
            hidden=2048,
            intermediate=16384,
            heads=8,
            kv_heads=1,
            head_dim=256,
            vocab=256000,
            tied_embeddings=True,
        ),
        ModelArch(
            name="gemma-7b",
            layers=28,
            hidden=3072,
            intermediate=24576,
            heads=16,
            kv_heads=16,
            head_dim=256,
            vocab=256000,
            tied_embeddings=True,
        ),
        # google/gemma-2-{9b,27b} (27B: head_dim 128, 32 x 128 = 4096 != hidden 4608);
        # torchtune gemma2/_model_builders.py gemma2_9b, gemma2_27b
        ModelArch(
            name="gemma-2-9b",
            layers=42,
            hidden=3584,
            intermediate=14336,
            heads=16,
            kv_heads=8,
            head_dim=256,
            vocab=256000,
            tied_embeddings=True,
        ),
        ModelArch(
            name="gemma-2-27b",
            layers=46,
            hidden=4608,
            intermediate=36864,
            heads=32,
            kv_heads=16,
            head_dim=128,
            vocab=256000,
            tied_embeddings=True,
        ),
        # microsoft/phi-4 (Phi3ForCausalLM, untied); torchtune phi4/_model_builders.py phi4_14b
        ModelArch(
            name="phi-4",
            layers=40,
            hidden=5120,
            intermediate=17920,
            heads=40,
            kv_heads=10,
            vocab=100352,
        ),
        # HuggingFaceTB/SmolLM2-{135M,360M,1.7B} (Llama layout, tied, vocab 49152); torchtune
        # smol/_model_builders.py smollm2_135m, smollm2_360m, smollm2_1_7b
        ModelArch(
            name="smollm2-135m",
            layers=30,
            hidden=576,
            intermediate=1536,
            heads=9,
            kv_heads=3,
            vocab=49152,
            tied_embeddings=True,
        ),
        ModelArch(
            name="smollm2-360m",
            layers=32,
            hidden=960,
            intermediate=2560,
            heads=15,
            kv_heads=5,
            vocab=49152,
            tied_embeddings=True,
        ),
        ModelArch(
            name="smollm2-1.7b",
            layers=24,
            hidden=2048,
            intermediate=8192,
            heads=32,
            kv_heads=32,
            vocab=49152,
            tied_embeddings=True,
        ),
        # google/gemma-3-1b-{pt,it}: the text-only Gemma 3 (Gemma3ForCausalLM; from 4B up
        # Gemma 3 is a vision model, refused below). Dims from google/gemma_pytorch at
        # 014acb7 (2025-03-12), gemma/config.py get_config_for_1b, and litgpt at 26857050,
        # litgpt/config.py "Gemma-3-1b-it"; tied as every Gemma (transformers 5.25
        # Gemma3TextConfig defaults tie_word_embeddings to True, the checkpoint does not set
        # it). Sliding-window layers (5 of every 6), the per-head q/k norms and the extra
        # pre/post-MLP norms are not modelled; the norms are 73k of its 1.0B parameters.
        ModelArch(
            name="gemma-3-1b",
            layers=26,
            hidden=1152,
            intermediate=6912,
            heads=4,
            kv_heads=1,
            head_dim=256,
            vocab=262144,
            tied_embeddings=True,
        ),
        # google/gemma-3-270m-{,it}: rasbt/LLMs-from-scratch at 023e6bc,
        # ch05/12_gemma3/standalone-gemma3.ipynb GEMMA3_CONFIG_270M, which loads the
        # checkpoint's model.safetensors with a shape check on every tensor (18 layers, 640
        # wide, MLP 2048, 4 heads, 1 kv head of 256, 262144 tokens) and counts 268,098,176
        # parameters with the embeddings tied: these dims plus the q/k and pre/post-MLP norms
        # (32,256) the analytic model leaves out. Sliding windows as gemma-3-1b (above).
        ModelArch(
            name="gemma-3-270m",
            layers=18,
            hidden=640,
            intermediate=2048,
            heads=4,
            kv_heads=1,
            head_dim=256,
            vocab=262144,
            tied_embeddings=True,
        ),
        # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B: Qwen2.5-1.5B's dims with an untied LM
        # head ("tie_word_embeddings": false): its config.json as saved by a full fine-tune of
        # it, vivekvar-dl/GSPO-DeepSeek-R1-Distill-Qwen-1.5B at c31f385,
        # custom_gspo_results/final_model/config.json (training_stats.json: model_name
        # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B), whose best_model/
        # model.safetensors.index.json holds lm_head.weight and 1,777,088,000 parameters
        ModelArch(
            name="deepseek-r1-distill-qwen-1.5b",
            layers=28,
            hidden=1536,
            intermediate=8960,
            heads=12,
            kv_heads=2,
            vocab=151936,
            qkv_bias=True,
        ),
        # mistralai/Mistral-Nemo-{Base,Instruct}-2407: NVIDIA NeMo at 8cfedd72,
        # nemo/collections/llm/gpt/model/mistral.py MistralNeMoConfig12B (40 layers,
        # hidden 5120, kv_channels 128, 32 heads / 8 groups and ffn 14336 from
        # MistralConfig7B); the 131072-token vocabulary from the checkpoint's config.json as
        # copied in kevinstephano/thunder_model_blocks at a23dd8fe,
        # thunder_model_blocks/mistral/mistral_config.py. head_dim 128 != 5120 / 32.
        ModelArch(
            name="mistral-nemo-12b",
            layers=40,
            hidden=5120,
            intermediate=14336,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=131072,
        ),
        # mistralai/Mistral-Small-24B-{Base,Instruct}-2501 (MistralForCausalLM): the
        # checkpoint's config.json as copied in huggingface.co/allura-org/
        # Mistral-Small-24b-Sertraline-0304 (_name_or_path mistralai/Mistral-Small-24B-Base-2501);
        # the same decoder as the text_config of Mistral-Small-3.1-24B-2503 (transformers 5.25
        # models/mistral3/configuration_mistral3.py default text_config), which
        # Devstral-Small-2505/2507 are without its vision encoder (axolotl at 067b021c,
        # examples/devstral/README.md)
        ModelArch(
            name="mistral-small-24b",
            layers=40,
            hidden=5120,
            intermediate=32768,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=131072,
        ),
        # mistralai/Ministral-8B-Instruct-2410: its config.json as copied in
        # huggingface.co/stan-hua/Ministral-8B-Instruct-2410-AWQ-W4A16 (from the mistralai
        # snapshot 4847e87e). Its interleaved sliding-window layers (transformers 5.25
        # docs/source/en/model_doc/ministral.md) are modelled as full attention.
        ModelArch(
            name="ministral-8b",
            layers=36,
            hidden=4096,
            intermediate=12288,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=131072,
        ),
        # microsoft/Phi-3-medium-{4k,128k}-instruct (Phi3ForCausalLM, GQA 40 / 10): config.json
        # at huggingface.co/microsoft/Phi-3-medium-4k-instruct revision 3da3d15 (the 128k
        # variant differs in rope scaling only)
        ModelArch(
            name="phi-3-medium",
            layers=40,
            hidden=5120,
            intermediate=17920,
            heads=40,
            kv_heads=10,
            vocab=32064,
        ),
        # openlm-research/open_llama_3b and open_llama_3b_v2 (LlamaForCausalLM, untied):
        # litgpt at 26857050, litgpt/config.py "open_llama_3b"; v2's config.json as copied in
        # huggingface.co/080-ai/flintlock_3B_v0.1 revision 397ca8e (_name_or_path
        # openlm-research/open_llama_3b_v2) has the same dims
        ModelArch(
            name="open-llama-3b",
            layers=26,
            hidden=3200,
            intermediate=8640,
            heads=32,
            kv_heads=32,
            vocab=32000,
        ),
        # stabilityai/stablelm-2-1_6b (StableLmForCausalLM): config.json as copied in
        # huggingface.co/Xenova/stablelm-2-1_6b revision e1b2288 (_name_or_path
        # stabilityai/stablelm-2-1_6b). A gated SiLU MLP and q/k/v biases like Qwen2, so these
        # dims give its FLOPs and bytes; what differs does not change them: LayerNorm with
        # biases (96k parameters) instead of RMSNorm, rotary on a quarter of each head.
        ModelArch(
            name="stablelm-2-1.6b",
            layers=24,
            hidden=2048,
            intermediate=5632,
            heads=32,
            kv_heads=32,
            vocab=100352,
            qkv_bias=True,
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
    "meta-llama-3-70b": "llama-3-70b",
    "meta-llama-3.1-405b": "llama-3.1-405b",
    # Qwen3-4B-{Instruct,Thinking}-2507: the July 2025 refresh, Qwen3-4B's dims (its
    # config.json changes rope_theta and max_position_embeddings only)
    "qwen3-4b-2507": "qwen3-4b",
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0, TinyLlama/TinyLlama_v1.1 (torchtune's checkpoint_dir)
    "tinyllama-1.1b-v1.0": "tinyllama-1.1b",
    "tinyllama_v1.1": "tinyllama-1.1b",
    # Mistral-Nemo-{Base,Instruct}-2407 once their tags are dropped
    "mistral-nemo-2407": "mistral-nemo-12b",
    # Mistral-Small-24B-{Base,Instruct}-2501; Devstral-Small-2505/2507 (above)
    "mistral-small-24b-2501": "mistral-small-24b",
    "devstral-small-2505": "mistral-small-24b",
    "devstral-small-2507": "mistral-small-24b",
    # Magistral-Small-2506 (1.0) and -2507 (1.1): "Building upon Mistral Small 3.1 (2503)"
    # (huggingface.co/mistralai/Magistral-Small-2506 model card), text-only checkpoints; the
    # vision encoder arrives with 2509, which is refused below
    "magistral-small-2506": "mistral-small-24b",
    "magistral-small-2507": "mistral-small-24b",
    "ministral-8b-2410": "ministral-8b",
    # Phi-3-mini-128k and Phi-3.5-mini: Phi-3-mini's dims (litgpt at 26857050,
    # litgpt/config.py "Phi-3-mini-128k-instruct", "Phi-3.5-mini-instruct": 32 layers, 3072,
    # 8192, padded vocabulary 32064), rope scaling aside
    "phi-3-mini-128k": "phi-3-mini",
    "phi-3.5-mini": "phi-3-mini",
    "phi-3-medium-4k": "phi-3-medium",
    "phi-3-medium-128k": "phi-3-medium",
    "gemma-3-1b-pt": "gemma-3-1b",
    "open_llama_3b": "open-llama-3b",
    "open_llama_3b_v2": "open-llama-3b",
    "stablelm-2-1_6b": "stablelm-2-1.6b",
    # Fine-tunes that keep their base's dims. Qwen2.5-Coder-{0.5,1.5,3,7,14,32}B,
    # Qwen2.5-Math-{7,72}B, QwQ-32B: litgpt at 26857050, litgpt/config.py (the same layers,
    # widths, heads, groups and padded vocabulary as Qwen2.5 of that size). The small Coder
    # models tie their embeddings as Qwen2.5 of their size does: their model cards, as
    # copied in ZHUI/paddlenlp_model_readme at ffc2695 (Qwen/Qwen2.5-Coder-{0.5B,1.5B,3B}/
    # index.md), say "tied word embeddings" with 0.49B/1.54B/3.09B parameters, of which
    # 0.36B/1.31B/2.77B are not embeddings, which are these presets' counts.
    "qwen2.5-coder-0.5b": "qwen2.5-0.5b",
    "qwen2.5-coder-1.5b": "qwen2.5-1.5b",
    "qwen2.5-coder-3b": "qwen2.5-3b",
    "qwen2.5-coder-7b": "qwen2.5-7b",
    "qwen2.5-coder-14b": "qwen2.5-14b",
    "qwen2.5-coder-32b": "qwen2.5-32b",
    "qwen2.5-math-7b": "qwen2.5-7b",
    "qwen2.5-math-72b": "qwen2.5-72b",
    "qwq-32b": "qwen2.5-32b",
    "qwq-32b-preview": "qwen2.5-32b",
    # DeepSeek-R1-Distill-Llama-{8,70}B: litgpt at 26857050, "R1-Distill-Llama-8B" /
    # "-70B" (Llama 3.1 8B's and Llama 3.3 70B's dims); DeepSeek-R1-Distill-Qwen-{7,14,32}B:
    # their config.json as copied in huggingface.co/prithivMLmods/QwQ-R1-Distill-7B-CoT,
    # unsloth/DeepSeek-R1-Distill-Qwen-14B-bnb-4bit revision 5a80c10 and
    # AIFunOver/DeepSeek-R1-Distill-Qwen-32B-openvino-8bit (Qwen2.5-7B/14B/32B's dims,
    # untied, 152064 tokens). The 1.5B distill has its own preset (untied, unlike
    # Qwen2.5-1.5B).
    "deepseek-r1-distill-llama-8b": "llama-3.1-8b",
    "deepseek-r1-distill-llama-70b": "llama-3.3-70b",
    "deepseek-r1-distill-qwen-7b": "qwen2.5-7b",
    "deepseek-r1-distill-qwen-14b": "qwen2.5-14b",
    "deepseek-r1-distill-qwen-32b": "qwen2.5-32b",
}

_TAGS = re.compile(r"-(instruct|thinking|it|hf|chat|base)(?=-|$)")
"""Variant tags that do not change the dims, wherever they stand: Mistral puts the
version after them (``Mistral-7B-Instruct-v0.2``)."""
_SUFFIXES = re.compile(r"(-unsloth|-bnb-4bit|-bnb-nf4|-bf16|-fp16)+$")
"""Upload suffixes that name a quantization or storage dtype, not other dims
(``Meta-Llama-3.1-405B-BNB-NF4-BF16``, ``llama-3-70b-fp16``)."""


def lookup(name: str) -> ModelArch | None:
    """The preset for a preset name or a Hugging Face model id, or None.

    Matches case-insensitively on the id's last path part, ignoring the org,
    variant tags (``-Instruct``, ``-Thinking``, ``-it``, ``-hf``, ``-chat``, ``-base``) and
    upload suffixes (``-bnb-4bit``, ``-unsloth-bnb-4bit``, ``-bnb-nf4``, ``-bf16``, ``-fp16``).
    """
    key = name.strip().lower().rsplit("/", 1)[-1]
    key = _SUFFIXES.sub("", _TAGS.sub("", key))
    if key in PRESETS:
        return PRESETS[key]
    alias = _ALIASES.get(key)
    return PRESETS[alias] if alias else None


_NOT_GATED = ", so Llama-style dims (gate, up and down projections) would describe another network"

_NOT_DENSE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        # transformers 5.25 models/mamba, mamba2, falcon_mamba, jamba, zamba, zamba2, bamba,
        # falcon_h1, qwen3_5 and qwen3_next (layer_types "linear_attention" / "full_attention"),
        # nemotron_h, kimi_linear, lfm2, granitemoehybrid, rwkv, recurrent_gemma
        re.compile(
            r"mamba|jamba|zamba|bamba|falcon-h1|qwen3\.5|qwen3_5|qwen3-next|nemotron-h\b"
            r"|nemotron-3-(?:nano|super|ultra)|nemotron-nano-(?:9|12)b-v2|kimi-linear|lfm2"
            r"|granite-4\.0-(?:h-|tiny|small)|rwkv|recurrentgemma|recurrent-gemma"
        ),
        "a hybrid or state-space model (Mamba, linear-attention or convolution layers in "
        "place of some or all attention layers)",
    ),
    (re.compile(r"llama-?4"), "a Llama 4 mixture-of-experts model with early-fused vision"),
    (
        re.compile(r"^falcon-(?:7b|40b|180b|rw-)"),
        "a Falcon decoder (transformers models/falcon: attention and a non-gated GELU MLP in "
        "parallel off one LayerNorm, multi-query attention in 7B)" + _NOT_GATED,
    ),
    (
        re.compile(r"^phi-(?:1|1_5|1\.5|2)(?![\d.])"),
        "a Phi-1/1.5/2 decoder (transformers models/phi: attention and a non-gated GELU MLP "
        "in parallel off one LayerNorm, rotary on part of each head)" + _NOT_GATED,
    ),
    (
        re.compile(
            r"^gpt2|^gpt-j-|gpt-neox|pythia|redpajama-incite|cerebras-gpt|^starcoder|^mpt-"
            r"|replit-code"
        ),
        "a GPT-style decoder with a non-gated GELU MLP and LayerNorm (transformers models/"
        "gpt2, gptj, gpt_neox, gpt_bigcode, starcoder2, mpt)" + _NOT_GATED,
    ),
    (
        re.compile(r"^nemotron-mini|^minitron-|^nemotron-4-\d|apertus"),
        "a decoder with a non-gated MLP (transformers models/nemotron: squared ReLU; "
        "models/apertus: xIELU; up and down projections only)" + _NOT_GATED,
    ),
    (
        re.compile(
            r"vision|-vl\b|vlm|llava|pixtral|internvl|paligemma|molmo|gemma-3-(4|12|27)b"
            r"|gemma-3n|gemma-?4-|ministral-3-|mistral-small-3\.[12]|magistral-small-2509"
            r"|mistral-medium-3|glm-4(?:\.\d)?v\b|qwen3\.5|qwen3_5"
        ),
        "a vision-language model (an image encoder feeding the decoder)",
    ),
    (
        re.compile(r"voxtral|qwen2-audio|whisper"),
        "a speech model (an audio encoder feeding the decoder)",
    ),
    (
        re.compile(
            r"mixtral|\bmoe\b|-moe-|olmoe|-a\d+(\.\d+)?[bm]\b|gpt-oss|dbrx|deepseek-v\d"
            r"|mistral-small-4|minimax|glm-4\.[5-7](?!v-flash)|glm-5|kimi-k2"
            r"|trinity-(?:nano|mini|large)|granite-4\.0-(?:h-)?(?:tiny|small)"
        ),
        "a mixture-of-experts model (each token runs a few of many expert MLPs)",
    ),
)
"""Model-id patterns of architectures a dense Llama-style preset cannot describe, each with
the reason a refusal gives:

- hybrid and state-space models: Mamba and its hybrids (Jamba, Zamba, Bamba, Falcon-H1,
  Nemotron-H and NVIDIA-Nemotron-3, Granite 4.0 H), Qwen3.5 and Qwen3-Next (Gated DeltaNet
  linear attention in three of every four layers), Kimi-Linear, LFM2 (short convolutions);
- Llama 4 (``Llama-4-Scout-17B-16E``);
- decoders whose MLP is not gated: Falcon 7B/40B/180B, Phi-1/1.5/2, GPT-2/GPT-J/GPT-NeoX
  (Pythia, RedPajama-INCITE, Cerebras-GPT), StarCoder, MPT (replit-code), Nemotron-4 /
  Nemotron-Mini / Minitron and Apertus. Falcon3, Llama-3.1-Minitron and Mistral-NeMo-Minitron
  are Llama/Mistral layouts and do not match (the patterns are anchored at the id's start);
- vision-language models (``Llama-3.2-11B-Vision``, ``Qwen2.5-VL-7B``, Gemma 3 from 4B up,
  Gemma 3n and every Gemma 4, Ministral 3, Mistral-Small-3.1/3.2, Magistral-Small-2509,
  Mistral-Medium-3.5, GLM-4.xV, Qwen3.5: early-fusion, axolotl at 067b021c
  examples/qwen3.5/README.md), and speech models (Voxtral);
- mixture-of-experts models, whose ids name the active parameters (``Qwen3-30B-A3B``) or the
  family (Mixtral, gpt-oss, DBRX, DeepSeek-V2/V3/V4, Mistral-Small-4, MiniMax, GLM-4.5/4.6/
  4.7/5, Kimi-K2, Arcee Trinity, Granite 4.0 Tiny/Small).

A model of several kinds (Qwen3.5-35B-A3B, Kimi-Linear-48B-A3B) is named with all of them."""


def unsupported(name: str) -> str | None:
    """What kind of model ``name`` is, when it is one pytest-goblin cannot model; else None.

    So a refusal names the real reason (a hybrid, mixture-of-experts or vision model, an
    MLP that is not gated) instead of asking for dims that would describe another network.
    """
    key = name.strip().lower().rsplit("/", 1)[-1]
    reasons = [reason for pattern, reason in _NOT_DENSE if pattern.search(key)]
    return " and ".join(reasons) or None
