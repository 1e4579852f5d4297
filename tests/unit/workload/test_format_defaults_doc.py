"""The defaults table of docs/workloads.md is what the readers really give an unset key.

Each row names a format, a WorkloadConfig field and its default; a minimal file of
that format (naming only its model, and what the format requires) is read and the
field compared, so the documented table cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import paths
from helpers.format_support import write

DOC = paths.REPO / "docs" / "workloads.md"
MINIMAL = {
    "axolotl": (
        "w/a.yml",
        "base_model: meta-llama/Meta-Llama-3-8B\ndatasets: []\nmicro_batch_size: 1\n"
        "batch_size: 8\n",
    ),
    "llamafactory": (
        "w/lf.yaml",
        "model_name_or_path: meta-llama/Meta-Llama-3-8B\nstage: sft\ntemplate: llama3\n",
    ),
    "llamafactory-v1": (
        "w/v1.yaml",
        "model: meta-llama/Meta-Llama-3-8B\nmodel_class: llm\ntrain_dataset: data/sft.yaml\n",
    ),
    "trl": ("w/trl.yaml", "model_name_or_path: meta-llama/Meta-Llama-3-8B\nuse_peft: true\n"),
    "hf-args": (
        "w/args.json",
        json.dumps(
            {
                "model_name_or_path": "meta-llama/Meta-Llama-3-8B",
                "output_dir": "o",
                "gradient_accumulation_steps": 1,
                "learning_rate": 5e-5,
                "block_size": 1024,
            }
        ),
    ),
    "torchtune": (
        "w/tt.yaml",
        "model:\n  _component_: torchtune.models.llama3_2.llama3_2_1b\n"
        "tokenizer:\n  max_seq_len: 1024\n"
        "optimizer:\n  _component_: torch.optim.AdamW\n"
        "batch_size: 4\n",
    ),
    "firefly": (
        "w/ff.json",
        json.dumps(
            {
                "model_name_or_path": "meta-llama/Meta-Llama-3-8B",
                "train_file": "data.jsonl",
                "template_name": "qwen",
                "max_seq_length": 1024,
                "bf16": True,
            }
        ),
    ),
}
"""A file per format that sets as little as the format allows."""


def documented_defaults() -> list[tuple[str, str, Any]]:
    """(format, field, default) of each row between the table's markers."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- defaults-table -->", 1)[1].split("<!-- /defaults-table -->", 1)[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        fmt, field, default, _source = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((fmt, field, yaml.safe_load(default)))
    return rows


def test_the_table_covers_every_format_it_documents() -> None:
    rows = documented_defaults()
    assert len(rows) >= 20
    assert {fmt for fmt, _, _ in rows} == set(MINIMAL)
    assert all(
        re.search(r"v\d|[0-9a-f]{12}", line)
        for line in DOC.read_text().splitlines()
        if line.startswith(
            ("| axolotl |", "| trl |", "| llamafactory |", "| llamafactory-v1 |", "| torchtune |")
        )
    )


@pytest.mark.parametrize(("fmt", "field", "default"), documented_defaults())
def test_each_documented_default_is_what_the_reader_gives(
    tmp_path: Path, fmt: str, field: str, default: Any
) -> None:
    relpath, text = MINIMAL[fmt]
    workload = write(tmp_path, relpath, text)
    assert workload.source.format == fmt
    assert field not in workload.sources
    # ``extras.<name>``: something the run uses that no field holds (TRL's chunked loss)
    if field.startswith("extras."):
        assert workload.config.extras.get(field.removeprefix("extras.")) == default
    else:
        assert getattr(workload.config, field) == default
