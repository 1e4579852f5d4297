"""Workload file formats, one module each, and the registry that picks one for a file.

Detection goes from the most distinctive marker to the least (a torchtune
``_component_`` is decisive, a TrainingArguments args file is only a set of
common keys), so a file is claimed by the format it really is.
"""

from __future__ import annotations

from typing import Any

from pytest_goblin.formats import (
    axolotl,
    firefly,
    hf_args,
    hf_script,
    llamafactory,
    llamafactory_v1,
    native,
    open_instruct,
    torchtune,
)
from pytest_goblin.formats.base import Format
from pytest_goblin.formats.vocabulary import (
    AXOLOTL_KEYS,
    FIREFLY_KEYS,
    LLAMAFACTORY_KEYS,
    LLAMAFACTORY_V1_KEYS,
    TRAINER_KEYS,
    TRL_KEYS,
    Vocabulary,
)

FORMATS: tuple[Format, ...] = (
    Format(
        torchtune.NAME,
        torchtune.SUFFIXES,
        torchtune.detect,
        torchtune.read,
        torchtune.edits,
        reads_text=True,
    ),
    Format(
        llamafactory_v1.NAME,
        llamafactory_v1.SUFFIXES,
        llamafactory_v1.detect,
        llamafactory_v1.read,
        llamafactory_v1.edits,
        vocabulary=LLAMAFACTORY_V1_KEYS,
    ),
    Format(native.NAME, frozenset({".yaml", ".yml", ".json"}), native.detect, apply=native.apply),
    Format(
        axolotl.NAME,
        axolotl.SUFFIXES,
        axolotl.detect,
        axolotl.read,
        axolotl.edits,
        vocabulary=AXOLOTL_KEYS,
    ),
    Format(
        firefly.NAME,
        firefly.SUFFIXES,
        firefly.detect,
        firefly.read,
        firefly.edits,
        vocabulary=FIREFLY_KEYS,
    ),
    Format(
        llamafactory.NAME,
        llamafactory.SUFFIXES,
        llamafactory.detect,
        llamafactory.read,
        llamafactory.edits,
        vocabulary=LLAMAFACTORY_KEYS,
    ),
    Format(
        open_instruct.NAME,
        open_instruct.SUFFIXES,
        open_instruct.detect,
        open_instruct.read,
    ),
    Format(
        hf_args.TRL,
        hf_args.SUFFIXES,
        hf_args.detect_trl,
        hf_args.read_trl,
        hf_args.edits_trl,
        vocabulary=TRL_KEYS,
        reads_text=True,
    ),
    Format(
        hf_args.HF_ARGS,
        hf_args.SUFFIXES,
        hf_args.detect_hf_args,
        hf_args.read_hf_args,
        hf_args.edits_hf_args,
        vocabulary=TRAINER_KEYS,
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
        (
            fmt
            for fmt in FORMATS
            if (suffix is None or suffix in fmt.suffixes) and fmt.accepts(data)
        ),
        None,
    )


def near_misses(data: Any, suffix: str | None = None) -> list[tuple[Vocabulary, list[str]]]:
    """Strict frameworks whose markers ``data`` has but which refuse some of its keys.

    Such a file is of a known shape but no known framework's: an item error names the
    unknown keys and the frameworks considered, rather than a reading as the wrong one.
    """
    return [
        (fmt.vocabulary, fmt.vocabulary.unknown(data))
        for fmt in FORMATS
        if (suffix is None or suffix in fmt.suffixes)
        and fmt.vocabulary is not None
        and fmt.detect(data)
        and not fmt.accepts(data)
    ]


def missing_markers(data: Any) -> str | None:
    """What a mapping that names its model the way some framework does lacks to be that
    framework's file, so "not a workload" says what is missing (None: nothing to say)."""
    if not isinstance(data, dict):
        return None
    if torchtune.has_components(data):
        return (
            "it has torchtune components but none of the keys every training recipe's config "
            "has (optimizer, loss, epochs, max_steps_per_epoch): a generation, evaluation or "
            "quantization config, which trains nothing to audit"
        )
    if isinstance(data.get("base_model"), str):
        return "it names `base_model` but none of axolotl's keys (" + _some(axolotl.MARKERS) + ")"
    if not isinstance(data.get("model_name_or_path"), str):
        return None
    unknown = TRL_KEYS.unknown(data)
    trl = "TRL's (" + _some(hf_args.TRL_MARKERS) + ")"
    if unknown:
        trl += f"; {', '.join(unknown)} are not keys `trl sft` parses"
    return (
        "it names `model_name_or_path` but none of the keys that mark LLaMA-Factory ("
        + _some(llamafactory.MARKERS)
        + ") or "
        + trl
        + ", nor three TrainingArguments keys with one about the batch or precision"
    )


def _some(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys)[:6]) + ", …"


def names() -> str:
    return ", ".join(fmt.name for fmt in FORMATS)
