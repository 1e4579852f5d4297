"""Hugging Face / TRL training scripts, read from their syntax tree, never run.

A script is a workload when it calls ``TrainingArguments``,
``Seq2SeqTrainingArguments`` or ``SFTConfig``. The config comes from:

* that call's keyword arguments (``**dict`` splats and named constants
  resolved), read with the TrainingArguments/SFTConfig vocabulary and defaults;
* the model's ``from_pretrained(model_id, attn_implementation=..., torch_dtype=...)``
  (the model id is its first argument; the load dtype decides the precision
  when no autocast flag does), ``BitsAndBytesConfig(load_in_4bit=True)``
  (``load_in_8bit=True`` is an error: 8-bit base models are not modelled; its
  ``bnb_4bit_compute_dtype``, float32 when unset, is the precision of a QLoRA without
  autocast; under ``bf16``/``fp16`` autocast re-casts the 4-bit matmuls, so the flag decides);
* ``LoraConfig(r=..., lora_alpha=..., target_modules=...)`` with PEFT's defaults;
* unsloth's ``FastLanguageModel.from_pretrained(model_name=..., max_seq_length=...,
  load_in_4bit=...)`` and ``FastLanguageModel.get_peft_model(model, r=..., ...)``
  with unsloth's defaults (4-bit, 2048 tokens, r 16, alpha 16, every projection,
  checkpointing on);
* ``DataLoader(num_workers=..., ...)``, only in scripts without a Trainer: a
  Trainer builds its own loaders from the arguments;
* ``torch.compile(...)`` or ``model.compile()`` (never ``re.compile``),
  ``model.gradient_checkpointing_enable()``, ``os.environ["K"] = "v"``.

A patch edits the literal that holds each value, or adds a keyword to the
call where the value was not written.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import hf_args
from pytest_goblin.formats.base import ALL_LINEAR, HF_ATTENTION_NAMES, Reading, Unpatchable
from pytest_goblin.formats.py_edit import PyText
from pytest_goblin.formats.script_ast import Script, Value, dotted, short_name
from pytest_goblin.formats.vocabulary import TRAINER_KEYS, TRL_KEYS

NAME = "hf-script"
SUFFIXES = frozenset({".py"})
ARGS_CALLS = ("TrainingArguments", "Seq2SeqTrainingArguments", "SFTConfig", "DPOConfig")
TRAINER_CALLS = ("Trainer", "SFTTrainer", "Seq2SeqTrainer", "DPOTrainer")
OTHER_TRAINERS = {
    "GRPOConfig": "GRPO, online RL (sampled completions scored by reward functions)",
    "AsyncGRPOConfig": "asynchronous GRPO, online RL",
    "GRPOWithReplayBufferConfig": "GRPO with a replay buffer, online RL",
    "GMPOConfig": "GMPO, online RL",
    "RLOOConfig": "RLOO, online RL",
    "PPOConfig": "PPO, online RL with a reward and a value model",
    "OnlineDPOConfig": "online DPO (completions sampled and judged during training)",
    "NashMDConfig": "Nash-MD, online preference RL",
    "XPOConfig": "XPO, online preference RL",
    "TPOConfig": "TPO preference training",
    "KTOConfig": "KTO preference training",
    "BCOConfig": "BCO preference training",
    "ORPOConfig": "ORPO preference training",
    "CPOConfig": "CPO preference training",
    "RewardConfig": "reward-model training",
    "PRMConfig": "process-reward-model training",
    "GKDConfig": "GKD distillation (a teacher forward and sampled completions)",
    "GOLDConfig": "GOLD distillation",
    "MiniLLMConfig": "MiniLLM distillation",
    "DistillationConfig": "distillation from a teacher model",
    "ServerDistillationConfig": "distillation from a served teacher",
    "SDFTConfig": "self-distillation fine-tuning",
    "SDPOConfig": "self-distillation policy optimisation",
    "SSDConfig": "self-speculative distillation",
    "IWOPDConfig": "on-policy distillation",
}
"""TRL's trainer configs other than SFTConfig and DPOConfig (TRL v1.9.0 ``trl/trainer/*_config.py``
and ``trl/experimental/*/*_config.py``): a script that builds one trains something
pytest-goblin does not model, and is refused by the call's name."""
_NOT_MODELS = ("Tokenizer", "Processor", "Config", "FeatureExtractor", "Dataset")
_LOADER_KEYS = {
    "num_workers": "dataloader_num_workers",
    "pin_memory": "dataloader_pin_memory",
    "prefetch_factor": "dataloader_prefetch_factor",
    "persistent_workers": "dataloader_persistent_workers",
}
UNSLOTH_CLASSES = ("FastLanguageModel", "FastModel", "FastVisionModel")
UNSLOTH_MAX_SEQ_LENGTH = 2048
"""``FastLanguageModel.from_pretrained``'s ``max_seq_length`` default (unsloth v0.1.801-beta
``unsloth/models/loader.py``)."""
_LORA_KEYS = {
    "r": "lora_r",
    "lora_alpha": "lora_alpha",
    "target_modules": "lora_target_modules",
    "use_dora": "use_dora",
}
_FIELD_KEYS = {
    "batch_size": "per_device_train_batch_size",
    "grad_accum_steps": "gradient_accumulation_steps",
    "optimizer": "optim",
    "lr": "learning_rate",
    "warmup_steps": "warmup_steps",
    "gradient_checkpointing": "gradient_checkpointing",
    "torch_compile": "torch_compile",
    "dataloader_workers": "dataloader_num_workers",
    "dataloader_pin_memory": "dataloader_pin_memory",
    "dataloader_persistent_workers": "dataloader_persistent_workers",
    "dataloader_prefetch_factor": "dataloader_prefetch_factor",
    "packing": "packing",
    "ddp_find_unused_parameters": "ddp_find_unused_parameters",
    "ddp_bucket_cap_mb": "ddp_bucket_cap_mb",
}


@dataclass
class _Place:
    """Where a key lives in the script: the call it belongs to and its value there."""

    call: ast.Call
    key: str
    value: Value | None
    label: str


@dataclass
class _Discovery:
    """Everything the script says that maps to a WorkloadConfig field."""

    script: Script
    args_call: ast.Call
    trl: bool
    dpo: bool = False
    """The arguments are TRL's DPOConfig: DPO, with DPOConfig's defaults."""
    places: dict[str, _Place] = field(default_factory=dict)
    model_call: ast.Call | None = None
    lora_call: ast.Call | None = None
    unsloth: bool = False
    """The LoRA comes from unsloth's ``get_peft_model``, whose defaults differ from PEFT's."""
    pin: tuple[tuple[int, int], str] | None = None
    trl_pin: tuple[tuple[int, int], str] | None = None
    """The transformers version the script installs, and where it says so."""
    seq_default: bool = False
    """The sequence length is SFTTrainer's own default, written nowhere in the script."""
    compile_label: str | None = None
    checkpointing_label: str | None = None
    env: dict[str, tuple[ast.Assign, Value]] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, Any]:
        return {
            key: place.value.value for key, place in self.places.items() if place.value is not None
        }


PARSERS = ("HfArgumentParser", "TrlParser")
"""Parsers that fill the training-argument classes from the command line or a file."""


def detect(data: Any) -> bool:
    """A call of training arguments: the Trainer's, SFTConfig, DPOConfig, or another TRL
    trainer's config (refused by name when read); or a parser of those classes (refused
    with the way to audit the run's arguments)."""
    if not isinstance(data, ast.Module):
        return False
    script = Script(data)
    return bool(script.calls_named(*ARGS_CALLS, *OTHER_TRAINERS)) or _parser(script) is not None


def _parser(script: Script) -> tuple[ast.Call, list[str]] | None:
    """``HfArgumentParser((ModelArguments, SFTConfig))`` / ``TrlParser(...)`` naming a
    training-argument class, and the classes it names."""
    for call in script.calls_named(*PARSERS):
        if not call.args:
            continue
        given = call.args[0]
        items = given.elts if isinstance(given, (ast.Tuple, ast.List)) else [given]
        names = [short_name(item) for item in items]
        if any(name in (*ARGS_CALLS, *OTHER_TRAINERS) for name in names):
            return call, names
    return None


def _names_a_constant(value: Value) -> bool:
    """Whether the expression is a name (``ATTENTION``), not a literal (``True``)."""
    return value.text.isidentifier() and not keyword.iskeyword(value.text)


def _label(call: ast.Call, key: str, value: Value | None) -> str:
    """Where a keyword's value is written: the call, and the constant it names if any."""
    where = f"{short_name(call.func)}({key}=)"
    if value is not None and _names_a_constant(value):
        return f"{where} via {value.text}, line {value.line}"
    return f"{where} line {value.line if value is not None else call.lineno}"


def _discover(tree: ast.Module) -> _Discovery:
    script = Script(tree)
    args_call = script.calls_named(*ARGS_CALLS)[0]
    name = short_name(args_call.func)
    found = _Discovery(
        script, args_call, trl=name in ("SFTConfig", "DPOConfig"), dpo=name == "DPOConfig"
    )

    def place(call: ast.Call, key: str, as_key: str | None = None) -> None:
        value = script.keywords(call).get(key)
        name = as_key or key
        found.places[name] = _Place(call, key, value, _label(call, key, value))

    for key in script.keywords(args_call):
        place(args_call, key)
    # SFTTrainer took max_seq_length and packing itself until TRL v0.13.0 (v0.12.0
    # trl/trainer/sft_trainer.py __init__), as older scripts and unsloth notebooks pass them
    for trainer in script.calls_named("SFTTrainer")[:1]:
        for key in ("max_seq_length", "packing"):
            if key in script.keywords(trainer) and key not in found.places:
                place(trainer, key)
    models = [
        call
        for call in script.calls_named("from_pretrained")
        if not any(word in (dotted(call.func) or "") for word in _NOT_MODELS)
    ]
    if models:
        found.model_call = models[0]
        if models[0].args:
            value = script.resolve(models[0].args[0])
            where = (
                f"via {value.text}, line {value.line}"
                if _names_a_constant(value)
                else f"line {models[0].lineno}"
            )
            found.places["model_name_or_path"] = _Place(
                models[0], "", value, f"from_pretrained() {where}"
            )
        elif _is_unsloth(models[0]) and "model_name" in script.keywords(models[0]):
            place(models[0], "model_name", "model_name_or_path")
        for key in ("attn_implementation", "torch_dtype", "dtype", "load_in_4bit", "load_in_8bit"):
            if key in script.keywords(models[0]):
                place(models[0], key)
        if _is_unsloth(models[0]):
            _unsloth_model(found, models[0])
    if "model_name_or_path" not in found.places:
        for trainer in script.calls_named("SFTTrainer", "DPOTrainer"):
            model = script.keywords(trainer).get("model")
            if model is not None and isinstance(model.value, str):
                found.places["model_name_or_path"] = _Place(
                    trainer, "model", model, _label(trainer, "model", model)
                )
    for key in ("load_in_4bit", "load_in_8bit"):
        quantized = [
            call
            for call in script.calls_named("BitsAndBytesConfig")
            if getattr(script.keywords(call).get(key), "value", None) is True
        ]
        if quantized:
            place(quantized[0], key)
            compute = script.keywords(quantized[0]).get(hf_args.COMPUTE_DTYPE)
            if key == "load_in_4bit" and compute is not None and compute.known:
                place(quantized[0], hf_args.COMPUTE_DTYPE)
            elif key == "load_in_4bit" and compute is None:
                # BitsAndBytesConfig's default (transformers v5.25.0
                # utils/quantization_config.py), which Linear4bit computes in without autocast
                found.places[hf_args.COMPUTE_DTYPE] = _Place(
                    quantized[0],
                    hf_args.COMPUTE_DTYPE,
                    _default(quantized[0], "float32"),
                    f"BitsAndBytesConfig() default {hf_args.COMPUTE_DTYPE}=torch.float32, "
                    f"line {quantized[0].lineno}",
                )
    loras = script.calls_named("LoraConfig")
    unsloth_peft = [call for call in script.calls_named("get_peft_model") if _is_unsloth(call)]
    if unsloth_peft:
        _unsloth_peft(found, unsloth_peft[0])
    elif loras:
        found.lora_call = loras[0]
        found.places["use_peft"] = _Place(
            loras[0], "", Value(True, True, None, "", 0), f"LoraConfig() line {loras[0].lineno}"
        )
        for key, as_key in _LORA_KEYS.items():
            if key in script.keywords(loras[0]):
                place(loras[0], key, as_key)
    loaders = script.calls_named("DataLoader")
    if loaders and not script.calls_named(*TRAINER_CALLS):
        for key, as_key in _LOADER_KEYS.items():
            if key in script.keywords(loaders[0]):
                place(loaders[0], key, as_key)
    _compile_and_checkpointing(found, models)
    _environment(found)
    _sft_trainer_length(found)
    found.pin = _transformers_pin(script)
    found.trl_pin = _pip_pin(script, _TRL_PIN)
    return found


def _sft_trainer_length(found: _Discovery) -> None:
    """TrainingArguments handed to ``SFTTrainer`` with no sequence length: TRL's default.

    SFTTrainer truncates to ``min(tokenizer.model_max_length, 1024)`` when no length is
    given (TRL v0.4.7 to v0.14.0 ``trl/trainer/sft_trainer.py``: "if max_seq_length is
    None: max_seq_length = min(tokenizer.model_max_length, 1024)"); SFTConfig's
    ``max_seq_length`` defaults to 1024 in v0.15.0 and its ``max_length`` since v0.16.0,
    and SFTTrainer turns TrainingArguments into ``SFTConfig(**args.to_dict())`` (v0.14.0
    to v1.9.0 sft_trainer.py). Only the length and the loss (``_trainer_arguments_loss``)
    come from TRL: ``to_dict`` carries TrainingArguments' own checkpointing and precision
    into the SFTConfig.
    """
    trainers = found.script.calls_named("SFTTrainer")
    if found.trl or not trainers or any(key in found.places for key in hf_args.SEQ_KEYS):
        return
    trainer = trainers[0]
    found.seq_default = True
    found.places["max_seq_length"] = _Place(
        trainer,
        "max_seq_length",
        _default(trainer, hf_args.TRL_MAX_LENGTH),
        f"SFTTrainer() default max_seq_length={hf_args.TRL_MAX_LENGTH}, line {trainer.lineno}",
    )


def _is_unsloth(call: ast.Call) -> bool:
    """``FastLanguageModel.from_pretrained(...)`` / ``.get_peft_model(...)`` and their kin."""
    return (dotted(call.func) or "").split(".")[0] in UNSLOTH_CLASSES


def _default(call: ast.Call, value: Any) -> Value:
    """A keyword the script leaves unset (unsloth's, ``BitsAndBytesConfig``'s), as the value
    the callee gives it."""
    return Value(value, True, None, repr(value), call.lineno)


def _unsloth_model(found: _Discovery, call: ast.Call) -> None:
    """unsloth's loader: 4-bit by default, and the sequence length the trainer is patched to use.

    Defaults of unsloth v0.1.801-beta ``unsloth/models/loader.py``
    (``FastLanguageModel.from_pretrained``): ``max_seq_length=2048``,
    ``load_in_4bit=True``; a sequence length the training arguments set wins.
    """
    written = found.script.keywords(call)
    name = short_name(call.func)
    for key, default in (("load_in_4bit", True), ("max_seq_length", UNSLOTH_MAX_SEQ_LENGTH)):
        if key == "max_seq_length" and any(k in found.places for k in hf_args.SEQ_KEYS):
            continue
        if key in written:
            found.places[key] = _Place(call, key, written[key], _label(call, key, written[key]))
        else:
            label = f"{name}() default {key}={default!r}, line {call.lineno}"
            found.places[key] = _Place(call, key, _default(call, default), label)
    if written.get("full_finetuning") is not None and written["full_finetuning"].value is True:
        del found.places["load_in_4bit"]


def _unsloth_peft(found: _Discovery, call: ast.Call) -> None:
    """unsloth's ``get_peft_model``: LoRA with its own defaults (v0.1.801-beta
    ``unsloth/models/llama.py``: r=16, lora_alpha=16, every projection, and
    ``use_gradient_checkpointing="unsloth"``, which checkpoints)."""
    found.lora_call = call
    found.unsloth = True
    written = found.script.keywords(call)
    found.places["use_peft"] = _Place(
        call, "", Value(True, True, None, "", 0), f"{short_name(call.func)}() line {call.lineno}"
    )
    for key, as_key in _LORA_KEYS.items():
        if key in written:
            found.places[as_key] = _Place(call, key, written[key], _label(call, key, written[key]))
    if "gradient_checkpointing" in found.places:
        return
    key = "use_gradient_checkpointing"
    value = written.get(key)
    if value is None:
        value = _default(call, True)
    elif value.known and value.value == "unsloth":
        value = Value(True, True, value.node, value.text, value.line)
    found.places["gradient_checkpointing"] = _Place(call, key, value, _label(call, key, value))


def _compile_and_checkpointing(found: _Discovery, models: list[ast.Call]) -> None:
    """``torch.compile(...)``/``model.compile()`` and ``gradient_checkpointing_enable()``."""
    model_names = {
        target.id
        for node in ast.walk(found.script.tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and node.value in models
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    imports_compile = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "torch"
        and any(alias.name == "compile" for alias in node.names)
        for node in ast.walk(found.script.tree)
    )
    for call in found.script.calls_named("compile"):
        func = call.func
        is_torch = dotted(func) == "torch.compile" or (
            isinstance(func, ast.Name) and imports_compile
        )
        is_model = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in model_names
        )
        if is_torch or is_model:
            found.compile_label = f"{dotted(func) or 'compile'}() line {call.lineno}"
            break
    for call in found.script.calls_named("gradient_checkpointing_enable"):
        found.checkpointing_label = f"gradient_checkpointing_enable() line {call.lineno}"
        break


def _environment(found: _Discovery) -> None:
    for node in ast.walk(found.script.tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if (
            isinstance(target, ast.Subscript)
            and dotted(target.value) == "os.environ"
            and isinstance(target.slice, ast.Constant)
            and isinstance(target.slice.value, str)
        ):
            found.env[target.slice.value] = (node, found.script.resolve(node.value))


def read(tree: ast.Module, display: str) -> Reading:
    script = Script(tree)
    parser = _parser(script)
    if parser is not None and not script.calls_named(*ARGS_CALLS, *OTHER_TRAINERS):
        call, classes = parser
        parsed = next(name for name in classes if name in (*ARGS_CALLS, *OTHER_TRAINERS))
        raise WorkloadError(
            display,
            f"{short_name(call.func)}({ast.unparse(call.args[0])}) fills {parsed} from the command "
            "line or an arguments file, which pytest-goblin does not see; audit the JSON or "
            "YAML file the run passes (read as TrainingArguments or TRL arguments), or write "
            f"the run's arguments in the script as {parsed}(...)",
            field=f"{short_name(call.func)}() line {call.lineno}",
        )
    if not script.calls_named(*ARGS_CALLS):
        other = script.calls_named(*OTHER_TRAINERS)[0]
        name = short_name(other.func)
        raise WorkloadError(
            display,
            f"{name}() builds the arguments of TRL's {OTHER_TRAINERS[name]}; pytest-goblin "
            "models supervised fine-tuning (TrainingArguments, SFTConfig) and DPO (DPOConfig)",
            field=f"{name}() line {other.lineno}",
        )
    found = _discover(tree)
    for splat in found.args_call.keywords:
        if splat.arg is None and found.script.dict_literal(splat.value) is None:
            raise WorkloadError(
                display,
                f"`**{ast.unparse(splat.value)}` is not a dict literal, so its keys "
                "cannot be read without running the script",
                field=f"{short_name(found.args_call.func)}(**) line {splat.lineno}",
            )
    model = found.places.get("model_name_or_path")
    if model is not None and (model.value is None or not model.value.known):
        del found.places["model_name_or_path"]
    for key, place in found.places.items():
        if key in hf_args.MAPPED_KEYS and (place.value is None or not place.value.known):
            text = place.value.text if place.value else "?"
            origin = _run_time_origin(found.script, text, place.call)
            sidecar = (
                f", or give `seq_len:` in the sidecar {_sidecar_name(display)}"
                if key in hf_args.SEQ_KEYS
                else " (a sidecar gives the model, seq_len and the launch, not this key)"
            )
            raise WorkloadError(
                display,
                f"`{text}` is {origin or 'not a literal'}; pytest-goblin reads scripts "
                "without running them, so write the value the run uses as a literal or a "
                f"constant assigned once{sidecar}",
                field=place.label,
            )
    values = found.values
    labels = {key: place.label for key, place in found.places.items()}
    labels[" or ".join(hf_args.SEQ_KEYS)] = "the script's sequence length"
    if "dtype" in values and "torch_dtype" not in values:
        values["torch_dtype"], labels["torch_dtype"] = values.pop("dtype"), labels["dtype"]
    pin = found.pin
    transformers = pin[0] if pin else None
    if found.unsloth:
        reading = hf_args.interpret(
            values,
            labels,
            display,
            trl=found.trl,
            lora_defaults=(16, 16),
            target_defaults=tuple(ALL_LINEAR),
            transformers=transformers,
            # unsloth compiles the model's forward with its own fused lm_head loss
            # (unsloth_zoo's unsloth_fused_ce_loss), not SFTConfig's loss_type
            sft_loss=False,
        )
    else:
        reading = hf_args.interpret(
            values,
            labels,
            display,
            trl=found.trl,
            dpo=found.dpo,
            lora_defaults=(8, 8),
            transformers=transformers,
            trl_version=found.trl_pin[0] if found.trl_pin else None,
        )
    if found.dpo:
        hf_args.read_dpo(
            values, display, reading, f"DPOConfig() line {found.args_call.lineno}", labels
        )
    fields, sources = dict(reading.fields), dict(reading.sources)
    if pin is not None and "optim" not in values:
        sources["optimizer"] = f"TrainingArguments' default under {pin[1]}"
    if pin is not None and pin[0] < hf_args.ATTN_IMPLEMENTATION_SINCE:
        sources.setdefault("attention_impl", f"eager attention under {pin[1]}")
    if found.compile_label:
        fields["torch_compile"], sources["torch_compile"] = True, found.compile_label
    if found.checkpointing_label:
        fields["gradient_checkpointing"] = True
        sources["gradient_checkpointing"] = found.checkpointing_label
    _trainer_arguments_loss(found, fields, sources)
    liger = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and short_name(node.func).startswith(("apply_liger_kernel_to_", "AutoLigerKernel"))
        ),
        None,
    )
    if liger is not None:
        fields["extras"] = {**fields.get("extras", {}), "use_liger_kernel": True}
        sources["extras.use_liger_kernel"] = f"{short_name(liger.func)}() line {liger.lineno}"
    env = {name: str(value.value) for name, (_, value) in found.env.items() if value.known}
    if env:
        fields["env_vars"] = env
        sources["env_vars"] = f"os.environ line {min(n.lineno for n, _ in found.env.values())}"
    return Reading(fields=fields, sources=sources, unset=dict(reading.unset))


def _trainer_arguments_loss(
    found: _Discovery, fields: dict[str, Any], sources: dict[str, str]
) -> None:
    """TrainingArguments handed to ``SFTTrainer`` train with SFTConfig's loss: SFTTrainer
    turns them into ``SFTConfig(**args.to_dict())`` (TRL v1.9.0 ``trl/trainer/sft_trainer.py``),
    whose unset ``loss_type`` is ``chunked_nll`` unless ``use_liger_kernel`` is on (since
    v1.7.0, ``trl/trainer/sft_config.py``; see ``hf_args._sft_loss_type``). An SFTConfig script
    is read by ``hf_args.interpret`` itself; unsloth's forward runs its own loss, and a
    script that installs a TRL older than v1.7.0 trains with ``nll``."""
    trainers = found.script.calls_named("SFTTrainer")
    extras = fields.get("extras", {})
    if found.trl or found.unsloth or not trainers or extras.get("use_liger_kernel") is True:
        return
    if found.trl_pin is not None and found.trl_pin[0] < hf_args.CHUNKED_NLL_DEFAULT_SINCE:
        return
    fields["extras"] = {**extras, "chunked_nll": hf_args.TRL_CHUNKED_NLL_TOKENS}
    sources["extras.chunked_nll"] = (
        f"SFTTrainer() line {trainers[0].lineno}: TRL's SFTConfig default loss_type "
        "chunked_nll (TRL v1.9.0)"
    )


_PIN = re.compile(r"\btransformers==(\d+)\.(\d+)[\w.]*")
_TRL_PIN = re.compile(r"\btrl(?:\[[\w,-]+\])?==(\d+)\.(\d+)[\w.]*")


def _transformers_pin(script: Script) -> tuple[tuple[int, int], str] | None:
    """The transformers version the script installs (a notebook's ``!pip install
    transformers==4.31.0`` cell, as ``get_ipython().system(...)`` once converted), and where:
    its defaults, not today's, are what the script trains with."""
    return _pip_pin(script, _PIN)


def _pip_pin(script: Script, pattern: re.Pattern[str]) -> tuple[tuple[int, int], str] | None:
    """The ``(major, minor)`` of the first ``pip install`` line matching ``pattern`` (the
    package pinned with ``==``), and where it is written."""
    for node in ast.walk(script.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            pin = pattern.search(text)
            if pin is not None and re.search(r"\bpip\b.*\binstall\b", text):
                shown = f"`pip install {pin.group(0)}` line {node.lineno}"
                return (int(pin.group(1)), int(pin.group(2))), shown
    return None


PARSE_CALLS = ("parse_args", "parse_known_args", "parse_args_into_dataclasses")
"""argparse's and ``HfArgumentParser``'s parsers: their results hold command-line values."""


def _sidecar_name(display: str) -> str:
    """The sidecar beside the script shown as ``display`` (``train.py`` → ``train.goblin.yaml``)."""
    path = PurePosixPath(display)
    return str(path.with_name(path.stem + ".goblin.yaml"))


def _run_time_origin(script: Script, text: str, call: ast.Call) -> str | None:
    """Where a value the script computes comes from, when that is the command line
    (``args.batch_size`` with an ``add_argument("--batch_size")``, or any attribute of
    what a parser returned) or a parameter of the function that builds the arguments:
    the usual shapes of copied example scripts. The default is named, as the run uses
    it when the command line does not set it."""
    holder, _, attribute = text.partition(".")
    if attribute.isidentifier():
        for option in script.calls_named("add_argument"):
            flags = {
                str(a.value).lstrip("-").replace("-", "_")
                for a in option.args
                if isinstance(a, ast.Constant)
            }
            dest = script.keywords(option).get("dest")
            if attribute in flags or (dest is not None and dest.value == attribute):
                given = script.keywords(option).get("default")
                shown = given.text if given is not None else "None"
                return (
                    f"the command line's --{attribute} (argparse default {shown}, "
                    f"line {option.lineno})"
                )
        parsed = script.names.get(holder)
        if isinstance(parsed, ast.Subscript):
            parsed = parsed.value
        if isinstance(parsed, ast.Call) and short_name(parsed.func) in PARSE_CALLS:
            return f"set on the command line ({short_name(parsed.func)}() line {parsed.lineno})"
        return None
    for function in ast.walk(script.tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or not any(
            node is call for node in ast.walk(function)
        ):
            continue
        arguments = function.args
        positional = [*arguments.posonlyargs, *arguments.args]
        defaults: dict[str, ast.expr | None] = {a.arg: None for a in positional}
        # Positional defaults belong to the last parameters.
        for argument, default in zip(
            reversed(positional), reversed(arguments.defaults), strict=False
        ):
            defaults[argument.arg] = default
        for argument, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
            defaults[argument.arg] = kw_default
        if text in defaults:
            value = defaults[text]
            shown = f"default {ast.unparse(value)}" if value is not None else "no default"
            return f"a parameter of {function.name}() ({shown}, line {function.lineno})"
    return None


# --- writing a patch ----------------------------------------------------------------


def apply(text: str, suffix: str, new_values: dict[str, Any]) -> str:
    """The script with each new value written into the literal that holds it."""
    found = _discover(ast.parse(text))
    editor = PyText(text)
    for field_name, value in new_values.items():
        _write(found, editor, field_name, value)
    return editor.result()


def _set(
    editor: PyText, found: _Discovery, field_name: str, call: ast.Call, key: str, value: Any
) -> None:
    """Edit ``key`` of ``call`` where it is written, or add it as a keyword."""
    current = found.script.keywords(call).get(key)
    since = hf_args.TRAINER_KEYS_SINCE.get(key)
    if call is found.args_call and found.pin and since and found.pin[0] < since:
        raise Unpatchable(
            field_name,
            f"TrainingArguments has no {key} before transformers v{since[0]}.{since[1]}.0, "
            f"and the script installs an older one ({found.pin[1]})",
        )
    if current is None:
        vocabulary = TRL_KEYS if found.trl else TRAINER_KEYS
        if call is found.args_call and key not in vocabulary.keys:
            raise Unpatchable(
                field_name,
                f"{short_name(call.func)} has no keyword {key!r} (keys from {vocabulary.source})",
            )
        editor.add_keyword(call, key, value)
    elif current.node is None:
        raise Unpatchable(
            field_name,
            f"{_label(call, key, current)} is the expression "
            f"`{current.text}`, not a literal to edit",
        )
    else:
        editor.replace(current.node, value)


def _write(found: _Discovery, editor: PyText, field_name: str, value: Any) -> None:
    if field_name == "precision":
        _write_precision(found, editor, value)
    elif field_name == "attention_impl":
        _write_attention(found, editor, value)
    elif field_name in ("lora_rank", "lora_alpha", "lora_targets"):
        if found.lora_call is None:
            raise Unpatchable(field_name, "the script has no LoraConfig(...) to edit")
        key = {"lora_rank": "r", "lora_alpha": "lora_alpha", "lora_targets": "target_modules"}[
            field_name
        ]
        _set(editor, found, field_name, found.lora_call, key, value)
    elif field_name.startswith("env_vars."):
        _write_environment(found, editor, field_name, str(value))
    elif field_name == "seq_len":
        seq_key = next((k for k in ("max_length", "max_seq_length") if k in found.places), None)
        place = found.places.get(seq_key or "")
        if place is not None and place.value is not None and place.value.value is None:
            raise Unpatchable(
                field_name,
                f"{seq_key}=None truncates nothing, so the sequence length is the data's, "
                "given in the sidecar; a patch does not start truncating it",
            )
        if found.seq_default:
            raise Unpatchable(
                field_name,
                f"the sequence length is SFTTrainer's default ({hf_args.TRL_MAX_LENGTH}); "
                "SFTTrainer took max_seq_length until TRL v0.12.0 and SFTConfig takes "
                "max_length since v0.16.0, so which keyword this script's TRL accepts is "
                "not in the file",
            )
        if place is not None and place.call is not found.args_call:
            _set(editor, found, field_name, place.call, place.key, value)
            return
        if seq_key is None and not found.trl:
            raise Unpatchable(
                field_name,
                "TrainingArguments has no sequence length; the "
                "script's tokenizer or collator sets it",
            )
        _set(editor, found, field_name, found.args_call, seq_key or "max_length", value)
    elif field_name in _FIELD_KEYS:
        _write_training_key(found, editor, field_name, value)
    else:
        raise Unpatchable(field_name, f"a training script has no argument for {field_name}")


def _write_training_key(found: _Discovery, editor: PyText, field_name: str, value: Any) -> None:
    key = _FIELD_KEYS[field_name]
    if field_name == "packing" and not found.trl and "packing" not in found.places:
        raise Unpatchable(field_name, "TrainingArguments has no packing (TRL's SFTConfig has)")
    if field_name == "packing" and found.dpo:
        raise Unpatchable(field_name, "DPOConfig has no packing (trl/trainer/dpo_config.py)")
    if field_name == "torch_compile" and found.compile_label and not value:
        raise Unpatchable(field_name, f"the script calls {found.compile_label}")
    if field_name == "gradient_checkpointing" and found.checkpointing_label and not value:
        raise Unpatchable(field_name, f"the script calls {found.checkpointing_label}")
    place = found.places.get(key)
    if place is not None and place.call is not found.args_call:
        _set(editor, found, field_name, place.call, place.key, value)
        return
    _set(editor, found, field_name, found.args_call, key, value)


def _write_precision(found: _Discovery, editor: PyText, precision: str) -> None:
    for edit in hf_args.precision_edits(found.values, precision, trl=found.trl):
        key = edit.path[-1]
        if key in ("bf16", "fp16", "tf32"):
            _set(editor, found, "precision", found.args_call, key, edit.value)
            continue
        if edit.path[0] == "model_init_kwargs":
            _set_init_kwarg(found, editor, "precision", key, edit.value)
            continue
        place = found.places[key]
        if place.value is None or place.value.node is None:
            raise Unpatchable("precision", f"{place.label} is not a literal to edit")
        editor.replace(place.value.node, edit.value)


def _write_attention(found: _Discovery, editor: PyText, attention: str) -> None:
    if attention not in HF_ATTENTION_NAMES:
        raise Unpatchable("attention_impl", f"no attn_implementation for {attention}")
    name = HF_ATTENTION_NAMES[attention]
    if found.pin and found.pin[0] < hf_args.ATTN_IMPLEMENTATION_SINCE:
        raise Unpatchable(
            "attention_impl",
            "from_pretrained() takes attn_implementation from transformers v4.36.0, and the "
            f"script installs an older one ({found.pin[1]})",
        )
    if found.model_call is not None:
        _set(editor, found, "attention_impl", found.model_call, "attn_implementation", name)
        return
    _set_init_kwarg(found, editor, "attention_impl", "attn_implementation", name)


def _set_init_kwarg(
    found: _Discovery, editor: PyText, field_name: str, key: str, value: Any
) -> None:
    """Set ``key`` in SFTConfig's ``model_init_kwargs`` dict literal."""
    init = next(
        (kw.value for kw in found.args_call.keywords if kw.arg == "model_init_kwargs"), None
    )
    mapping = found.script.dict_literal(init) if init is not None else None
    if mapping is None:
        raise Unpatchable(
            field_name,
            f"the script has no from_pretrained(...) call or "
            f"model_init_kwargs dict to write {key} into",
        )
    current = found.script.splat(mapping).get(key)
    if current is None:
        editor.add_entry(mapping, key, value)
    elif current.node is None:
        raise Unpatchable(field_name, f"model_init_kwargs[{key!r}] is `{current.text}`")
    else:
        editor.replace(current.node, value)


def _write_environment(found: _Discovery, editor: PyText, field_name: str, value: str) -> None:
    name = field_name.split(".", 1)[1]
    line = f"os.environ[{json.dumps(name)}] = {json.dumps(value)}"
    if name in found.env:
        current = found.env[name][1]
        if current.node is None:
            raise Unpatchable(field_name, f"os.environ[{name!r}] is set to an expression")
        editor.replace(current.node, value)
        return
    tree = found.script.tree
    if found.env:
        last = max(
            (statement for statement, _ in found.env.values()),
            key=lambda node: node.end_lineno or 0,
        )
        editor.add_line_after(last, line)
        return
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    if not any(
        isinstance(node, ast.Import) and any(a.name == "os" for a in node.names) for node in imports
    ):
        raise Unpatchable(field_name, "the script neither sets os.environ nor imports os")
    editor.add_line_after(imports[-1], line)
