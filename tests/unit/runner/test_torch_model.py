"""The torch runner's decoder: what it computes and how it is built (CPU, tiny dims)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pytest_goblin.catalogue.architectures import ModelArch  # noqa: E402
from pytest_goblin.runner.model import LoRALinear, ModelOptions, build  # noqa: E402

TINY = ModelArch(layers=2, hidden=64, intermediate=172, heads=4, kv_heads=2, vocab=256)
SEQ = 32
CPU = torch.device("cpu")


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(TINY.vocab, (2, SEQ + 1), generator=torch.Generator().manual_seed(seed))
    return tokens[:, :-1], tokens[:, 1:]


def loss_and_grads(options: ModelOptions) -> tuple[float, dict[str, torch.Tensor]]:
    model, _ = build(TINY, SEQ, options, CPU, seed=0)
    loss = model(*batch())
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def test_the_model_has_exactly_the_architectures_parameter_count() -> None:
    for arch in (TINY, TINY.model_copy(update={"tied_embeddings": True, "qkv_bias": True})):
        model, _ = build(arch, SEQ, ModelOptions(), CPU)
        assert sum(p.numel() for p in model.parameters()) == arch.total_params


def test_the_model_is_materialised_on_the_device_with_finite_weights() -> None:
    model, _ = build(TINY, SEQ, ModelOptions(), CPU)
    tensors = [*model.parameters(), *model.buffers()]
    assert all(t.device == CPU for t in tensors)
    assert all(torch.isfinite(t).all() for t in tensors)


def test_eager_and_sdpa_attention_agree_numerically() -> None:
    eager_loss, eager_grads = loss_and_grads(ModelOptions(attention="eager"))
    sdpa_loss, sdpa_grads = loss_and_grads(ModelOptions(attention="sdpa"))
    assert sdpa_loss == pytest.approx(eager_loss, rel=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(sdpa_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    plain_loss, plain_grads = loss_and_grads(ModelOptions(checkpointing=False))
    ckpt_loss, ckpt_grads = loss_and_grads(ModelOptions(checkpointing=True))
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad)


def test_grouped_query_attention_shares_key_value_heads() -> None:
    model, _ = build(TINY, SEQ, ModelOptions(), CPU)
    attn = model.blocks[0].attn
    assert attn.k_proj.out_features == TINY.n_kv_heads * TINY.dim_per_head
    assert attn.q_proj.out_features == TINY.heads * TINY.dim_per_head


def test_the_loss_starts_near_the_uniform_entropy() -> None:
    loss, _ = loss_and_grads(ModelOptions())
    assert loss == pytest.approx(torch.log(torch.tensor(float(TINY.vocab))).item(), rel=0.05)


def test_lora_leaves_only_the_adapters_trainable() -> None:
    options = ModelOptions(lora_rank=4, lora_targets=("q_proj", "v_proj"))
    model, warnings = build(TINY, SEQ, options, CPU)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert warnings == []
    assert trainable and all(n.endswith(("lora_a", "lora_b")) for n in trainable)
    assert len(trainable) == 2 * 2 * TINY.layers  # A and B, two targets, every layer


def test_lora_keeps_the_frozen_base_in_the_compute_dtype_and_adapters_in_fp32() -> None:
    options = ModelOptions(lora_rank=4, lora_targets=("all-linear",))
    model, _ = build(TINY, SEQ, options, CPU, frozen_dtype=torch.bfloat16)
    for name, param in model.named_parameters():
        assert param.dtype == (torch.float32 if param.requires_grad else torch.bfloat16), name
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 7 * TINY.layers


def test_an_adapted_model_starts_as_the_base_model() -> None:
    base_loss, _ = loss_and_grads(ModelOptions())
    lora_loss, _ = loss_and_grads(ModelOptions(lora_rank=4, lora_targets=("q_proj",)))
    assert lora_loss == pytest.approx(base_loss, rel=1e-6)


def test_lora_targets_that_match_nothing_are_an_error() -> None:
    with pytest.raises(ValueError, match="match no linear"):
        build(TINY, SEQ, ModelOptions(lora_rank=4, lora_targets=("c_attn",)), CPU)


def test_lora_targets_that_partly_match_are_a_warning() -> None:
    options = ModelOptions(lora_rank=4, lora_targets=("q_proj", "c_attn"))
    _, warnings = build(TINY, SEQ, options, CPU)
    assert warnings and "c_attn" in warnings[0]


def test_fewer_layers_can_be_built_than_the_architecture_has() -> None:
    model, _ = build(TINY.model_copy(update={"layers": 8}), SEQ, ModelOptions(layers=1), CPU)
    assert len(model.blocks) == 1


def test_flash_attention_never_falls_back_to_another_kernel() -> None:
    model, _ = build(TINY, SEQ, ModelOptions(attention="flash"), CPU)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(*batch())  # torch's CPU build has a flash kernel; a GPU build may not
    assert torch.isfinite(loss)
    assert model.blocks[0].attn.impl == "flash"
