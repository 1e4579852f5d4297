"""The hf engine's multi-rank runs: the Hugging Face Trainer in every rank, as under torchrun.

A workload with ``world_size: N`` measured by the ``hf`` engine is launched by the same
elastic launcher as the native engine's ranks (``runner/distributed.py``: a c10d
rendezvous on a free localhost port, no restarts, failures named by rank); what each
rank runs is the Trainer of ``runner/hf_engine.py``. The launcher sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` as torchrun does, and
``TrainingArguments`` initialises the process group from them through accelerate's
``PartialState`` (transformers 5.25.0 ``src/transformers/training_args.py``,
``_setup_devices``), with ``ddp_backend`` gloo on the CPU and nccl on a GPU (RCCL in a
ROCm build of torch). So the wrapping is the Trainer's own:

- ``ddp`` (and ``single``, which N ranks run as DDP, as the Trainer does under torchrun):
  accelerate's ``DistributedDataParallel``, with the ``DistributedDataParallelKwargs``
  the Trainer builds from ``ddp_find_unused_parameters``, ``ddp_bucket_cap_mb``,
  ``ddp_broadcast_buffers`` and ``ddp_static_graph`` (transformers 5.25.0
  ``src/transformers/trainer.py``, ``_build_accelerator_args``): the workload's
  ``ddp_find_unused_parameters`` and ``ddp_bucket_cap_mb`` where it sets them, else the
  Trainer's defaults (``find_unused_parameters`` on for a PEFT model);
- ``fsdp``: ``fsdp=True`` with ``fsdp_config`` ``version: 2`` (FSDP2 ``fully_shard``,
  transformers 5.25's default; accelerate 1.16.0 ``src/accelerate/utils/fsdp_utils.py``,
  ``fsdp2_prepare_model``), resharding after forward unless the workload's
  ``zero_stage`` is 2 (SHARD_GRAD_OP), CPU offload from ``offload_params``, and the
  workload's ``extras.fsdp_config`` keys over these. GPUs only: accelerate 1.16.0
  ``src/accelerate/state.py`` (``AcceleratorState.__init__``) turns the FSDP plugin on
  for the multi-GPU distributed types and not for ``MULTI_CPU``, where the Trainer would
  silently run DDP instead; the native engine runs FSDP2 on gloo;
- ``deepspeed``: not launched (skipped with the reason).

Exposed communication is measured as the native engine measures it: after the timed
windows the Trainer runs one untimed and up to ``COMPUTE_ONLY_STEPS`` timed steps more
with gradient synchronisation skipped, each micro-batch under accelerate's
``Accelerator.no_sync`` (DDP's ``no_sync``; FSDP2's ``set_requires_gradient_sync(False)``,
with resharding off so that no all-gather runs after the untimed step, and zero
gradients where FSDP left the sharded ones unset, so that the optimizer does a real
step's work). ``comm_share`` is ``1 - slowest rank's compute-only step / full step``.
Each rank's peak memory is read when its timed steps end; rank 0 gathers them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from pytest_goblin.runner import distributed, training
from pytest_goblin.runner.engines import HF_FSDP_ON_CPU
from pytest_goblin.runner.measurement import Measurement
from pytest_goblin.runner.training import COMPUTE_ONLY_STEPS, RunRequest
from pytest_goblin.schemas import WorkloadConfig

if TYPE_CHECKING:
    from transformers import Trainer

FSDP_ON_CPU = f"{HF_FSDP_ON_CPU}; --goblin-engine native measures FSDP2 fully_shard on the CPU"


def unsupported_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Why the hf engine cannot launch ``config``'s ranks on ``device`` (skipped), or None."""
    if config.strategy == "deepspeed":
        installed = importlib.util.find_spec("deepspeed") is not None
        return (
            "strategy deepspeed: "
            + (
                "the hf engine does not launch the Trainer's DeepSpeed ZeRO"
                if installed
                else "DeepSpeed is not installed"
            )
            + "; the hf engine launches ddp, and fsdp on GPUs, through the Trainer"
        )
    if config.strategy == "fsdp" and device.type != "cuda":
        return FSDP_ON_CPU
    # the launcher's own limits: a torch.distributed backend, and a device per rank
    return distributed.unsupported_reason(config, device)


def rank_arguments(config: WorkloadConfig, device: torch.device) -> dict[str, Any]:
    """The TrainingArguments keys of ``config``'s strategy: the device's backend, the
    workload's DDP settings (unset: the Trainer's own choice), FSDP's. A ValueError names
    the ``extras`` key a run cannot start from."""
    options: dict[str, Any] = {
        "ddp_backend": distributed.BACKENDS[device.type],
        "ddp_find_unused_parameters": config.ddp_find_unused_parameters,
        "ddp_bucket_cap_mb": config.ddp_bucket_cap_mb,
    }
    if config.strategy == "fsdp":
        settings: dict[str, Any] = {
            "version": 2,
            # SHARD_GRAD_OP keeps the parameters gathered between forward and backward
            "reshard_after_forward": config.zero_stage != 2,
        }
        if config.offload_params:
            settings["cpu_offload"] = True
        given = config.extras.get("fsdp_config", {})
        if not isinstance(given, dict):
            raise ValueError(
                f"extras.fsdp_config is {given!r}: TrainingArguments takes a mapping there"
            )
        options["fsdp"] = True
        options["fsdp_config"] = settings | given
    return options


def launch(request: RunRequest, device: torch.device) -> Measurement:
    """Run ``request`` as ``world_size`` ranks of the Trainer; rank 0's measurement."""
    rank_arguments(request.config, device)  # bad extras fail here, not once per rank
    return distributed.launch(request, device, train)


def train(payload: dict[str, Any], rank: int) -> dict[str, Any] | None:
    """One rank (``distributed.rank_main`` calls it in a launched process): the Trainer's
    run, with the process group that its TrainingArguments initialise, then torn down."""
    from pytest_goblin.runner import hf_engine
    from pytest_goblin.runner.worker import fault_hook

    world = int(os.environ["WORLD_SIZE"])
    device = distributed.rank_device(payload)
    request = distributed.rank_request(payload)
    config = request.config
    strategy = "ddp" if config.strategy == "single" else config.strategy
    ranks = HFRanks(rank, world, strategy, device, payload["threads"])
    try:
        measurement = hf_engine.run(request, device, fault_hook(config, rank), ranks)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return asdict(measurement) if rank == 0 else None


@dataclass
class HFRanks:
    """One rank of an hf engine launch: what it adds to the Trainer's arguments, and the
    measurement's one collective (every rank's figures to rank 0)."""

    rank: int
    world: int
    strategy: str
    device: torch.device
    threads: int

    def arguments(self, config: WorkloadConfig) -> dict[str, Any]:
        return rank_arguments(config, self.device)

    def after_setup(self) -> None:
        """Called once the TrainingArguments exist (the process group too): on the CPU the
        ranks share the cores evenly, as the native engine's do. accelerate sets physical
        cores / ranks threads itself when ``OMP_NUM_THREADS`` is unset (1.16.0
        ``state.py``); the cores this process may run on are what the launcher counted."""
        if self.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(self.threads)

    def gather(self, values: list[float]) -> list[list[float]] | None:
        """Every rank's ``values`` in rank order on rank 0; None on the others."""
        return self._torch().gather(values)

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank: whether warmup has settled, which decides when
        each rank's timed windows begin, must be the same everywhere."""
        return self._torch().agree(flag)

    def _torch(self) -> distributed.TorchRanks:
        return distributed.TorchRanks(self.rank, self.world, self.strategy, self.device)


class ComputeOnly(TrainerCallback):
    """The steps after the timed windows: gradient synchronisation skipped, one untimed
    and ``steps`` timed; also reads the rank's peak memory when the timed steps end.

    The Trainer (``hf_engine._LossRecordingTrainer``) runs each micro-batch under
    ``Accelerator.no_sync`` while ``active``; this callback switches it on after the last
    timed step and marks the clock around the timed compute-only steps.
    """

    def __init__(
        self, ranks: HFRanks, start: int | None, steps: int, memory: training._PeakMemory
    ) -> None:
        self.ranks = ranks
        # the global step at which the timed windows end: known once warmup has settled
        # (``hf_engine.StepTimer`` sets it)
        self.start = start
        self.steps = steps
        self.memory = memory
        self.clock = training._Clock(ranks.device)
        self.active = False
        self.peak_gb = 0.0
        self.reserved_gb: float | None = None
        self.trainer: Trainer | None = None  # set once the Trainer exists

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        done = state.global_step
        if self.start is None:
            return
        if done == self.start:
            # before the compute-only steps, which may hold more (FSDP without resharding)
            self.peak_gb = self.memory.peak_gb()
            self.reserved_gb = self.memory.reserved_gb()
            self.active = True
            if self.ranks.strategy == "fsdp":
                model = self._model()
                # the last steps of the run: the module is not trained afterwards
                model.set_reshard_after_forward(False)
                model.set_reshard_after_backward(False)
        elif done == self.start + 1:  # the untimed step has gathered what it keeps
            self.clock.sync()
            self.clock.mark()
        elif done == self.start + 1 + self.steps:
            self.clock.mark()
            control.should_training_stop = True  # max_steps allows for a longer warmup

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.active or self.ranks.strategy != "fsdp":
            return
        # FSDP2 without gradient sync sets no sharded gradient, and AdamW skips a parameter
        # without one: zeros make the optimizer do the work of a real step. The optimizer's
        # own parameters, the sharded ones (the module may hold unsharded ones just now)
        assert self.trainer is not None and self.trainer.optimizer is not None
        for group in self.trainer.optimizer.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)

    def _model(self) -> Any:
        """The Trainer's wrapped model (an FSDPModule under FSDP2)."""
        assert self.trainer is not None
        return self.trainer.model_wrapped

    def seconds(self) -> float:
        """Mean seconds of this rank's compute-only step."""
        return sum(self.clock.intervals()) / self.steps


def compute_only_steps(steps: int) -> int:
    """Timed compute-only steps after ``steps`` timed steps (the native engine's number)."""
    return min(steps, COMPUTE_ONLY_STEPS)
