"""open-instruct training configs, recognised so that they are refused by name.

open-instruct (allenai/open-instruct v0.3.0) trains with its own accelerate
loops (``open_instruct/finetune.py``, ``dpo_tune_cache.py``), not the Hugging
Face Trainer: its ``FlatArguments`` has no ``optim``, no ``dataloader_*`` keys
and a fused AdamW by default (``fused_optimizer: True``), and its parser
refuses keys it does not know. Read as a TRL file, such a config would be
given a patch its trainer rejects. pytest-goblin has no reader for these
loops, so the file is an item error that says so and names the keys that
mark it, instead of a wrong reading.
"""

from __future__ import annotations

from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import Reading
from pytest_goblin.formats.vocabulary import (
    AXOLOTL,
    LLAMAFACTORY,
    OPEN_INSTRUCT,
    TRAINING_ARGUMENTS,
    TRL_SFT,
)

NAME = "open-instruct"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})

HF_EXAMPLE_KEYS = frozenset(
    {
        "config_name",
        "tokenizer_name",
        "use_fast_tokenizer",
        "low_cpu_mem_usage",
        "dataset_config_name",
        "train_file",
        "validation_file",
        "max_train_samples",
        "max_eval_samples",
        "overwrite_cache",
        "preprocessing_num_workers",
        "timeout",
    }
)
"""Model and data arguments that transformers' example scripts (``run_clm.py``) share with
open-instruct, so they mark neither."""
MARKERS = frozenset(
    OPEN_INSTRUCT - TRAINING_ARGUMENTS - TRL_SFT - LLAMAFACTORY - AXOLOTL - HF_EXAMPLE_KEYS
)
"""Keys of open-instruct's FlatArguments/TokenizerConfig that no other supported framework has
(``dataset_mixer_list``, ``with_tracking``, ``use_slow_tokenizer``, ``clip_grad_norm``, …)."""
MIN_MARKERS = 2
"""How many of them a file needs: one alone could be a user script's own argument."""


def detect(data: Any) -> bool:
    """``model_name_or_path`` plus two keys only open-instruct's arguments have."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("model_name_or_path"), str)
        and len(MARKERS & data.keys()) >= MIN_MARKERS
    )


def read(data: dict[str, Any], display: str) -> Reading:
    marks = sorted(MARKERS & data.keys())
    raise WorkloadError(
        display,
        f"an open-instruct config (keys {', '.join(marks)} are open-instruct's, v0.3.0 "
        "open_instruct/finetune.py FlatArguments): open-instruct trains in its own accelerate "
        "loop, which pytest-goblin does not read, so it is not audited; describe the run as a "
        "goblin workload to audit it",
        field=marks[0],
    )
