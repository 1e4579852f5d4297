"""The logits as the loss really keeps them: Liger's fused linear cross-entropy and
CutCrossEntropy never hold them, torchtune's chunked losses hold fp32 log-probabilities
plus one chunk; the readers record which loss a file uses and the Liger advice follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.format_support import copy_in
from pytest_goblin.catalogue.architectures import lookup
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import WorkloadError
from pytest_goblin.kb import load_kb
from pytest_goblin.runner.analytic import (
    CHUNK_TRANSIENT_BYTES_PER_ELEMENT,
    CHUNKED_NLL_BYTES_PER_ELEMENT,
    CHUNKED_NLL_HEAD_UPCAST_BYTES,
    CHUNKED_NLL_HIDDEN_COPIES,
    FUSED_CE_BYTES_PER_TOKEN,
    FUSED_CE_HIDDEN_COPIES,
    LOG_PROBS_BYTES_PER_ELEMENT,
    LOGITS_BYTES_PER_ELEMENT,
    AnalyticModel,
    loss_kernel_of,
)
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import Workload, load_workload
from pytest_goblin.workload.sidecar import sidecar_path

GB = 1e9
QWEN = lookup("qwen2.5-7b")
assert QWEN is not None
LONG: dict[str, Any] = {
    "model": "qwen2.5-7b",
    "finetune": "lora",
    "precision": "bf16",
    "attention_impl": "flash",
    "batch_size": 1,
    "seq_len": 32768,
    "gradient_checkpointing": True,
}
TOKENS = 1 * 32768


def activations(extras: dict[str, Any], **update: Any) -> float:
    config = WorkloadConfig(**{**LONG, **update, "extras": extras})
    return AnalyticModel(get_device("h100")).memory(config).activations_gb


def read(tmp_path: Path, relpath: str, sidecar: str = "") -> Workload:
    path = copy_in(tmp_path, relpath)
    if sidecar:
        sidecar_path(path).write_text(sidecar, encoding="utf-8")
    return load_workload(path, display=relpath)


def test_a_fused_linear_cross_entropy_takes_the_logits_out_of_the_peak() -> None:
    full = activations({})
    fused_logits = TOKENS * (FUSED_CE_HIDDEN_COPIES * QWEN.hidden * 2 + FUSED_CE_BYTES_PER_TOKEN)
    logits = TOKENS * QWEN.vocab * LOGITS_BYTES_PER_ELEMENT
    for extras in ({"use_liger_kernel": True}, {"cut_cross_entropy": True}):
        assert full - activations(extras) == pytest.approx((logits - fused_logits) / GB)
    # 32k tokens x 152k vocabulary x 8 B: ~40 GB of the 7B's peak is the logits
    assert full - activations({"use_liger_kernel": True}) > 39.0


def test_torchtunes_chunked_losses_keep_the_log_probabilities_and_one_chunk() -> None:
    elements = TOKENS * QWEN.vocab
    full = activations({})
    linear = activations({"chunked_cross_entropy": 8})
    output = activations({"chunked_output_cross_entropy": 8})
    fused = activations({"use_liger_kernel": True})
    chunk = CHUNK_TRANSIENT_BYTES_PER_ELEMENT / 8
    expected_linear = elements * (LOG_PROBS_BYTES_PER_ELEMENT + chunk)
    assert full - linear == pytest.approx(
        (elements * LOGITS_BYTES_PER_ELEMENT - expected_linear) / GB
    )
    # CEWithChunkedOutputLoss also holds the model's bf16 logit chunks during its forward
    assert output - linear == pytest.approx(elements * 2 / GB)
    assert fused < linear < output < full
    # more chunks, a smaller transient
    assert activations({"chunked_cross_entropy": 32}) < linear


def test_a_loss_kernel_that_is_not_a_fused_cross_entropy_keeps_the_full_logits() -> None:
    full = activations({})
    # axolotl's LigerPlugin without liger_fused_linear_cross_entropy: true
    assert activations(
        {"use_liger_kernel": True, "liger_fused_linear_cross_entropy": False}
    ) == pytest.approx(full)
    # DPO needs the logits of both sequences: Liger's forward materialises them
    dpo = {"objective": "dpo", "seq_len": 8192}
    assert activations({"use_liger_kernel": True}, **dpo) == pytest.approx(activations({}, **dpo))


def test_open_r1s_olympiccoder_7b_at_32k_with_liger_fits_the_h100s_it_runs_on(
    tmp_path: Path,
) -> None:
    workload = read(tmp_path, "real/open_r1/OlympicCoder-7B_sft_config_v00.00.yaml")
    config = workload.config
    assert config.seq_len == 32768 and config.batch_size == 2
    assert config.extras.get("use_liger_kernel") is True  # its use_liger: true
    model = AnalyticModel(get_device("h100"))
    assert model.memory(config).total_gb < 80
    without = config.model_copy(update={"extras": {}})
    # the full fp32 logits of 2 x 32k tokens x 152k entries alone are ~80 GB
    assert model.memory(without).total_gb > 80


@pytest.mark.parametrize(
    ("relpath", "name"),
    [
        ("real/torchtune/llama3_1_8B_lora.yaml", "chunked_cross_entropy"),
        ("real/torchtune/qwen3_8B_full.yaml", "chunked_cross_entropy"),
        ("real/torchtune/qwen2_5_7B_lora_single_device.yaml", "chunked_output_cross_entropy"),
    ],
)
def test_torchtune_records_its_chunked_loss_with_the_chunk_count(
    tmp_path: Path, relpath: str, name: str
) -> None:
    workload = read(tmp_path, relpath, "seq_len: 8192\n")
    assert workload.config.extras == {name: 8}
    assert workload.sources[f"extras.{name}"] == "loss._component_"


def test_torchtune_reads_num_output_chunks_and_refuses_fewer_than_one(tmp_path: Path) -> None:
    relpath = "real/torchtune/llama3_1_8B_lora.yaml"
    text = copy_in(tmp_path, relpath).read_text(encoding="utf-8")
    loss = "  _component_: torchtune.modules.loss.LinearCrossEntropyLoss\n"
    assert loss in text
    path = tmp_path / "w" / "chunks.yaml"
    path.parent.mkdir()
    sidecar_path(path).write_text("seq_len: 8192\n", encoding="utf-8")
    path.write_text(text.replace(loss, loss + "  num_output_chunks: 16\n"), encoding="utf-8")
    assert load_workload(path, display="chunks.yaml").config.extras == {"chunked_cross_entropy": 16}
    path.write_text(text.replace(loss, loss + "  num_output_chunks: 0\n"), encoding="utf-8")
    with pytest.raises(WorkloadError, match="at least 1") as info:
        load_workload(path, display="chunks.yaml")
    assert info.value.field == "loss.num_output_chunks"
    path.write_text(
        text.replace(loss, "  _component_: torch.nn.CrossEntropyLoss\n"), encoding="utf-8"
    )
    assert load_workload(path, display="chunks.yaml").config.extras == {}


def test_the_liger_advice_is_silent_where_a_chunked_loss_runs_and_tells_torchtune_its_own(
    tmp_path: Path,
) -> None:
    kb = load_kb()

    def advice(config: WorkloadConfig) -> str | None:
        rules = kb.match(config, "cuda").advisories
        return next((rule.advice for rule in rules if rule.id == "liger-kernel"), None)

    workload = read(tmp_path, "real/torchtune/qwen3_8B_full.yaml", "seq_len: 8192\n")
    assert advice(workload.config) is None
    plain = workload.config.model_copy(update={"extras": {}})
    text = advice(plain)
    assert text is not None and "torchtune.modules.loss.LinearCrossEntropyLoss" in text
    liger_without_flce = plain.model_copy(
        update={"extras": {"use_liger_kernel": True, "liger_fused_linear_cross_entropy": False}}
    )
    assert advice(liger_without_flce) is not None


def test_a_trainer_liger_kernel_config_without_the_fused_loss_keeps_the_full_logits(
    tmp_path: Path,
) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-7B\nmax_length: 4096\nuse_liger_kernel: true\n"
    fused = tmp_path / "fused.yaml"
    fused.write_text(text, encoding="utf-8")
    kept = tmp_path / "kept.yaml"
    kept.write_text(
        text + "liger_kernel_config:\n  fused_linear_cross_entropy: false\n  rms_norm: true\n",
        encoding="utf-8",
    )
    on, off = (load_workload(path).config for path in (fused, kept))
    assert off.extras == {"use_liger_kernel": True, "liger_fused_linear_cross_entropy": False}
    model = AnalyticModel(get_device("h100"))
    assert model.memory(off).activations_gb > model.memory(on).activations_gb


def test_trls_chunked_nll_keeps_hidden_copies_one_chunk_and_the_upcast_head() -> None:
    # TRL v1.9.0 _chunked_cross_entropy_loss: no full logits; the sorted hidden states and
    # their gradient, one 256-token chunk, and h.float() @ w.float().t() copies of lm_head
    assert loss_kernel_of(WorkloadConfig(**LONG, extras={"chunked_nll": 256})) == (
        "chunked_nll",
        256,
    )
    head = QWEN.vocab * QWEN.hidden
    expected = (
        TOKENS * CHUNKED_NLL_HIDDEN_COPIES * QWEN.hidden * 2
        + 256 * QWEN.vocab * CHUNKED_NLL_BYTES_PER_ELEMENT
        + head * (CHUNKED_NLL_HEAD_UPCAST_BYTES + 2)  # a LoRA's 16-bit head, 16-bit autocast
    )
    full = activations({})
    chunked = activations({"chunked_nll": 256})
    assert full - chunked == pytest.approx(
        (TOKENS * QWEN.vocab * LOGITS_BYTES_PER_ELEMENT - expected) / GB
    )
    # a full fine-tune's fp32 master head is not copied, only cast for the matmul
    master = activations({"chunked_nll": 256}, finetune="full")
    assert chunked - master == pytest.approx(head * CHUNKED_NLL_HEAD_UPCAST_BYTES / GB)


def test_at_short_context_trls_chunked_nll_holds_more_than_the_full_logits() -> None:
    # the head's per-chunk copies (6 B per vocabulary x hidden element) outweigh
    # 1,024 tokens of fp32 logits and log-probabilities
    short = {"seq_len": 1024}
    assert activations({"chunked_nll": 256}, **short) > activations({}, **short)


def test_a_preference_loss_keeps_the_full_logits_even_where_chunked_nll_is_recorded() -> None:
    config = WorkloadConfig(**LONG, objective="dpo", extras={"chunked_nll": 256})
    assert loss_kernel_of(config) == ("full", 1)


def test_chunked_nll_wins_over_a_liger_patch_a_script_applies_itself() -> None:
    # TRL replaces the model's forward, bypassing Liger's fused loss in it
    extras = {"use_liger_kernel": True, "chunked_nll": 256}
    assert loss_kernel_of(WorkloadConfig(**LONG, extras=extras)) == ("chunked_nll", 256)
