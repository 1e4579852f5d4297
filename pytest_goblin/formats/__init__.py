"""Workload file formats, one module each, and the registry that picks one for a file.

Detection goes from the most distinctive marker to the least (a torchtune
``_component_`` is decisive, a TrainingArguments args file is only a set of
common keys), so a file is claimed by the format it really is.
"""

from __future__ import annotations

from typing import Any

from pytest_goblin.formats import axolotl, hf_args, hf_script, llamafactory, native, torchtune
from pytest_goblin.formats.base import Format

FORMATS: tuple[Format, ...] = (
    Format(torchtune.NAME, torchtune.SUFFIXES, torchtune.detect, torchtune.read, torchtune.edits),
    Format(native.NAME, frozenset({".yaml", ".yml", ".json"}), native.detect, apply=native.apply),
    Format(axolotl.NAME, axolotl.SUFFIXES, axolotl.detect, axolotl.read, axolotl.edits),
    Format(
        llamafactory.NAME,
        llamafactory.SUFFIXES,
        llamafactory.detect,
        llamafactory.read,
        llamafactory.edits,
    ),
    Format(hf_args.TRL, hf_args.SUFFIXES, hf_args.detect_trl, hf_args.read_trl, hf_args.edits_trl),
    Format(
        hf_args.HF_ARGS,
        hf_args.SUFFIXES,
        hf_args.detect_hf_args,
        hf_args.read_hf_args,
        hf_args.edits_hf_args,
    ),
    Format(
        hf_script.NAME, hf_script.SUFFIXES, hf_script.detect, hf_script.read, apply=hf_script.apply
    ),
)
BY_NAME = {fmt.name: fmt for fmt in FORMATS}


def detect(data: Any, suffix: str | None = None) -> Format | None:
    """The format of a file's parsed content, or None when it is not a workload.

    With a suffix, only formats whose files carry it are considered.
    """
    return next(
        (fmt for fmt in FORMATS if (suffix is None or suffix in fmt.suffixes) and fmt.detect(data)),
        None,
    )


def names() -> str:
    return ", ".join(fmt.name for fmt in FORMATS)
