"""Model parallelism is refused in one wording by every reader that can meet it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.format_support import write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import PARALLELISM_KINDS, refuse_parallelism

AXOLOTL = (
    "base_model: meta-llama/Meta-Llama-3-8B\ndatasets:\n  - path: ./data.jsonl\n    type: alpaca\n"
    "micro_batch_size: 1\ngradient_accumulation_steps: 1\n"
)
TORCHTUNE = (
    "model:\n  _component_: torchtune.models.llama3_2.llama3_2_1b\n"
    "tokenizer:\n  _component_: torchtune.models.llama3.llama3_tokenizer\n  max_seq_len: 1024\n"
    "optimizer:\n  _component_: torch.optim.AdamW\n  lr: 3e-4\nbatch_size: 8\n"
)
LLAMAFACTORY = "model_name_or_path: Qwen/Qwen2.5-7B-Instruct\nstage: sft\ntemplate: qwen\n"
LLAMAFACTORY_V1 = "model: Qwen/Qwen3-4B\nmodel_class: llm\ntrain_dataset: data/v1_sft_demo.yaml\n"


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        (AXOLOTL + "tensor_parallel_size: 2\n", "tensor_parallel_size", "tensor"),
        (AXOLOTL + "context_parallel_size: 2\n", "context_parallel_size", "context"),
        (AXOLOTL + "sequence_parallel_degree: 2\n", "sequence_parallel_degree", "sequence"),
        (TORCHTUNE + "tensor_parallel_dim: 2\n", "tensor_parallel_dim", "tensor"),
        (TORCHTUNE + "context_parallel_dim: 2\n", "context_parallel_dim", "context"),
        (LLAMAFACTORY_V1 + "cp_size: 2\n", "cp_size", "context"),
        (
            LLAMAFACTORY + "use_hyper_parallel: true\nhyper_parallel_cp_size: 2\n",
            "hyper_parallel_cp_size",
            "context",
        ),
    ],
)
def test_every_reader_refuses_a_parallel_degree_in_the_same_words(
    tmp_path: Path, text: str, key: str, kind: str
) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == key
    assert str(info.value) == (
        f"w/a.yaml: field '{key}': {key}: 2 is {kind} parallelism; pytest-goblin models data "
        "parallelism only (DDP, FSDP, DeepSpeed ZeRO), so this run is not modelled: set "
        f"{key}: 1 to audit it as a data-parallel run, or deselect this item"
    )


@pytest.mark.parametrize("degree", [1, "1", 1.0, 0])
def test_a_degree_of_one_is_data_parallel(degree: object) -> None:
    assert refuse_parallelism("a.yaml", "tensor_parallel_size", degree, "tensor") is None


def test_a_degree_that_is_not_an_integer_names_the_key() -> None:
    with pytest.raises(WorkloadError, match="expected an integer") as info:
        refuse_parallelism("a.yaml", "cp_size", "two", "context")
    assert info.value.field == "cp_size"


def test_the_kind_is_one_the_message_can_name() -> None:
    assert set(PARALLELISM_KINDS) == {"tensor", "context", "sequence", "pipeline", "expert"}
    with pytest.raises(ValueError, match="unknown parallelism kind"):
        refuse_parallelism("a.yaml", "tp", 2, "data")
