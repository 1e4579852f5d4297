"""The pytest side of measured runs: worker processes, their protocol, locks and timeouts.

Torch runs in worker subprocesses (``worker.py``), never in the pytest
process: a crash, a hang or a leak ends one worker, not the session, and a
workload's ``env_vars`` can be in place before torch initialises the device.
One worker serves each environment signature of a device; it starts on first
use, is reused across items, and is started again after it dies (a multi-rank run
on a pinned xdist worker has one of its own, which sees the GPUs it takes). A run that
outlives ``--goblin-timeout`` has its worker killed (the worker's whole
process group, DataLoader workers included). A file lock per physical device
keeps two pytest processes (xdist workers, parallel CI jobs) from benchmarking
on one device at once.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from pytest_goblin.errors import DeviceFault, OutOfMemory, RunFailed, UnsupportedConfig
from pytest_goblin.runner import gpu_topology, worker_env
from pytest_goblin.runner.analytic import DATA_SAMPLE_BASE_S, DATA_SAMPLE_PER_1K_TOKENS_S
from pytest_goblin.runner.measurement import Measurement, catalogue_spec, run_metrics
from pytest_goblin.runner.options import SCRATCH_ENV, MeasureOptions, parse_selector
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.runner.visible import UNPINNED, environ_for, installed, rocm_indices, widened
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadConfig

START_TIMEOUT_S = 300.0
"""Importing torch and initialising a GPU can take a while on a cold node; this is
not a run, so ``--goblin-timeout`` does not apply."""

TUNABLEOP_FILE = "PYTORCH_TUNABLEOP_FILENAME"
"""Where TunableOp reads and writes its tuned GEMMs (torch/cuda/tunable.py; it inserts the
device ordinal before the extension). Left unset, every worker of every session writes
``tunableop_results0.csv`` in the working directory (all pinned workers are device 0) and
later sessions reuse it; the runner points it into a directory of this session's, one per
worker, unless the workload's env_vars name a file."""

SHUTDOWN_GRACE_S = 10.0
STDERR_TAIL_LINES = 15
WorkerKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
"""A device worker's signature: its workload's ``env_vars`` and the visible-devices
variable a multi-rank run widens (``LiveDevice._gpus``), each as sorted items."""
LOCK_DIR = gpu_topology.lock_dir()
"""The device locks' directory: ``GOBLIN_LOCK_DIR`` as pytest started, else the temp
directory (private to a container: jobs in containers that share a GPU need a directory
they all mount)."""


def sample_cost_s(config: WorkloadConfig, sample_cost_ms: float | None) -> float:
    """Host CPU seconds per sample: the workload's ``goblin.sample_cost_ms``, or the
    analytic model's figure, so that fake and measured runs assume the same cost."""
    if sample_cost_ms is not None:
        return sample_cost_ms / 1e3
    return DATA_SAMPLE_BASE_S + DATA_SAMPLE_PER_1K_TOKENS_S * config.seq_len / 1024


def file_stem(name: str) -> str:
    """``name`` as a file name: a lock id can hold what a path cannot (a MIG UUID's ``/``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and everything it started, then reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


class DeviceWorker:
    """One worker process: a device, an environment, one JSON line per request."""

    def __init__(
        self,
        selector: str,
        env_vars: dict[str, str],
        tunableop_dir: Path | None = None,
        engine: str = "native",
        scratch_dir: Path | None = None,
        gpus: Mapping[str, str] | None = None,
    ) -> None:
        self.selector = selector
        self.env_vars = env_vars
        self.gpus = dict(gpus or {})  # widens an xdist worker's pin for a multi-rank run
        self.engine = engine  # imported at start-up, so that no run's timeout pays for it
        self.tunableop_dir = tunableop_dir
        self.scratch_dir = scratch_dir
        self.hello: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> dict[str, Any]:
        """Start the process and read its hello (the device it found, or why none).

        On Linux the worker dies with the thread that starts it (PR_SET_PDEATHSIG
        follows the creating thread), so start workers from the main thread, as
        pytest runs tests.
        """
        if self._process is not None:
            self.kill()  # the remains of a worker that died while idle
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        self._buffer = b""
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest_goblin.runner.worker",
                self.selector,
                str(os.getpid()),
                self.engine,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            # an xdist worker's pinned GPU, unless the selector names an index
            env=self._environment(),
            # its own process group: Ctrl-C in the terminal does not reach it, and
            # killing the group also ends its DataLoader workers
            start_new_session=True,
        )
        # also at interpreter exit, should the session end without closing it
        self._finalizer = weakref.finalize(self, _kill_group, self._process)
        self.hello = self._read(START_TIMEOUT_S, "while starting")
        return self.hello

    def _environment(self) -> dict[str, str]:
        """The worker's environment: pytest's, the pinned GPU (or the GPUs a multi-rank run
        takes), the workload's variables, and a TunableOp results file of this worker's own
        unless one is named."""
        env = {**environ_for(self.selector, os.environ), **self.gpus, **self.env_vars}
        if self.tunableop_dir is not None and TUNABLEOP_FILE not in env:
            self.tunableop_dir.mkdir(parents=True, exist_ok=True)
            env[TUNABLEOP_FILE] = str(self.tunableop_dir / "tunableop_results.csv")
        if self.scratch_dir is not None:
            env[SCRATCH_ENV] = str(self.scratch_dir)
        return env

    def request(self, message: dict[str, Any], timeout_s: float, what: str) -> dict[str, Any]:
        """Send one request and wait up to ``timeout_s`` for its answer."""
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise DeviceFault(self._died(what)) from None
        return self._read(timeout_s, what)

    def _read(self, timeout_s: float, what: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        try:
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise DeviceFault(
                        f"the device worker timed out {what} (limit {timeout_s:g} s, "
                        "--goblin-timeout) and was killed"
                    )
                ready, _, _ = select.select([fd], [], [], remaining)
                if ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        raise DeviceFault(self._died(what))
                    self._buffer += chunk
        except DeviceFault:
            raise
        except BaseException:
            # Ctrl-C (or anything else) mid-run: the run is lost, and no orphan may stay
            self.kill()
            raise
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _died(self, what: str) -> str:
        assert self._process is not None
        try:
            code = self._process.wait(SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:  # it closed its output but lives on: end it
            self.kill()
            code = self._process.wait()
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        tail = self._stderr_tail()
        self.kill()
        return f"the device worker died {what} ({how}); the next run starts a fresh one.{tail}"

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        if not lines:
            return ""
        return "\nLast lines of its stderr:\n" + "\n".join(lines[-STDERR_TAIL_LINES:])

    def kill(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._close_files()

    def ask_to_exit(self) -> None:
        """Send the shutdown request without waiting (``close`` waits)."""
        if self.alive:
            assert self._process is not None and self._process.stdin is not None
            try:
                self._process.stdin.write(b'{"op": "shutdown"}\n')
                self._process.stdin.flush()
            except BrokenPipeError:
                pass

    def close(self) -> None:
        """Ask the worker to exit; kill it if it has not within a few seconds."""
        self.ask_to_exit()
        if self._process is not None:
            try:
                self._process.wait(SHUTDOWN_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _close_files(self) -> None:
        if self._process is not None:
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class LiveDevice:
    """One selected device: its workers (one per environment signature) and its lock."""

    def __init__(self, options: MeasureOptions) -> None:
        self.options = options
        self._workers: dict[WorkerKey, DeviceWorker] = {}
        self._info: DeviceInfo | None = None
        self._lock_id: str | None = None
        self._lock_path: Path | None = None
        self._session_dir: Path | None = None  # this session's files (TunableOp results)
        # why a worker could not start, per environment signature: one set of env_vars
        # (a bad HIP_VISIBLE_DEVICES, say) failing says nothing about the others
        self._unavailable: dict[WorkerKey, str] = {}
        self._widened: dict[int, dict[str, str]] = {}  # _gpus per rank count
        self.on_wait: Callable[[str], None] | None = None
        """Told, in one line, when a run waits for the device lock another process holds."""

    def _gpus(self, ranks: int) -> dict[str, str]:
        """The visible-devices variable that shows a run of ``ranks`` ranks the GPUs it takes
        where this process is an xdist worker pinned to one (``visible.widened``: its own
        first, then the session's next ones); nothing otherwise."""
        if ranks <= 1 or parse_selector(self.options.device).kind == "cpu":
            return {}
        if ranks not in self._widened:
            base = environ_for(self.options.device, os.environ)
            gpus: dict[str, str] = {}
            if UNPINNED in base:  # the drivers are read only on a pinned worker
                platform, count = installed()
                indices = rocm_indices() if platform == "rocm" else None
                gpus = widened(base, ranks, platform, count, indices)
            self._widened[ranks] = gpus
        return self._widened[ranks]

    def _key(self, env_vars: dict[str, str], ranks: int) -> WorkerKey:
        return tuple(sorted(env_vars.items())), tuple(sorted(self._gpus(ranks).items()))

    def _worker(self, env_vars: dict[str, str], ranks: int = 1) -> DeviceWorker:
        refused = worker_env.check(env_vars)  # also a patch's env_vars, not only the file's
        if refused is not None:
            raise DeviceFault(f"env_vars.{refused[0]}: {refused[1]}")
        key = self._key(env_vars, ranks)
        if key not in self._workers:
            if self._session_dir is None:
                self._session_dir = Path(tempfile.mkdtemp(prefix="pytest-goblin-session-"))
            tunableop_dir = self._session_dir / f"tunableop-{len(self._workers)}"
            self._workers[key] = DeviceWorker(
                self.options.device,
                dict(env_vars),
                tunableop_dir,
                self.options.engine,
                scratch_dir=self._session_dir,
                gpus=dict(key[1]),
            )
        worker = self._workers[key]
        if not worker.alive:
            self._start(worker, key)
        return worker

    def _start(self, worker: DeviceWorker, key: WorkerKey) -> None:
        if key in self._unavailable:
            raise DeviceFault(self._unavailable[key])
        hello = worker.start()
        if not hello["ok"]:
            worker.kill()
            # the same selector and variables fail the same way every time: remember why
            where = f" with env_vars {dict(key[0])}" if key[0] else ""
            where += "".join(f" with {name}={value}" for name, value in key[1])
            self._unavailable[key] = (
                f"no device for --goblin-device {self.options.device}{where}: {hello['message']}"
            )
            raise DeviceFault(self._unavailable[key])
        if self._info is None:
            # the engine is the session's choice, not the worker's: it names it in the device
            self._info = DeviceInfo.model_validate({**hello["info"], "engine": self.options.engine})
            self._lock_id = hello["lock_id"]
            # one lock per physical package where the worker could name it (partitions,
            # GCDs and MIG slices of one package share its power and memory)
            locked = hello.get("package_id") or hello["lock_id"]
            self._lock_path = LOCK_DIR / f"{file_stem(locked)}.lock"

    @property
    def info(self) -> DeviceInfo:
        """The device as a worker found it (starts the default worker if none ran yet)."""
        if self._info is None:
            self._worker({})
        assert self._info is not None
        return self._info

    @property
    def lock_id(self) -> str:
        """The physical device as its worker named it (``runner.detect``): one name in every
        process that reaches it, however the visible-devices variables number it there."""
        if self._lock_id is None:
            self._worker({})
        assert self._lock_id is not None
        return self._lock_id

    @contextmanager
    def locked(
        self, env_vars: dict[str, str], claims: Sequence[str] = (), ranks: int = 1
    ) -> Iterator[None]:
        """Start the worker for ``env_vars`` (and ``ranks``) if needed, then hold the
        device's lock, and those of the other devices a multi-rank run takes (``claims``,
        named as the worker names its own), waiting while another process holds one. The
        locks are taken in the order of their paths, so two runs that claim overlapping
        devices cannot each hold one the other waits for."""
        try:
            from filelock import FileLock
        except ModuleNotFoundError:
            raise RunFailed(
                "measured runs need filelock: pip install 'pytest-goblin[torch]'"
            ) from None
        from filelock import Timeout

        self._worker(env_vars, ranks)  # the lock's name comes from the device the worker found
        assert self._lock_path is not None
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        paths = sorted({self._lock_path, *(LOCK_DIR / f"{file_stem(c)}.lock" for c in claims)})
        with ExitStack() as held:
            for path in paths:
                lock = FileLock(path)
                holder = path.with_suffix(".holder")
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    if self.on_wait is not None:
                        what = (
                            "device lock"
                            if path == self._lock_path
                            else (f"lock of a device this {len(claims)}-rank run takes")
                        )
                        self.on_wait(f"waiting for the {what} {path}{_held_by(holder)}")
                    lock.acquire()
                held.callback(lock.release)
                holder.write_text(f"{os.getpid()}\n")
            yield

    def request(
        self, env_vars: dict[str, str], message: dict[str, Any], what: str, ranks: int = 1
    ) -> dict[str, Any]:
        """Ask the worker for ``env_vars`` and a run of ``ranks`` ranks."""
        worker = self._worker(env_vars, ranks)
        response = worker.request(message, self.options.timeout_s, what)
        if response.get("fatal"):
            worker.close()  # it exits after a sticky device error; the next run starts anew
        return response

    def worker_pid(self, env_vars: dict[str, str], ranks: int = 1) -> int | None:
        """The process id of the running worker for these variables (diagnostics, tests)."""
        worker = self._workers.get(self._key(env_vars, ranks))
        return worker.pid if worker is not None and worker.alive else None

    def close(self) -> None:
        for worker in self._workers.values():
            worker.ask_to_exit()  # all at once: each takes a moment to tear torch down
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()
        if self._session_dir is not None:  # written by the workers as they exited
            shutil.rmtree(self._session_dir, ignore_errors=True)
            self._session_dir = None


def _held_by(holder: Path) -> str:
    """`` held by PID n`` from the file the lock's holder wrote, or nothing when unknown."""
    try:
        pid = holder.read_text().strip()
    except OSError:
        return ""
    return f" held by PID {pid}" if pid.isdigit() else ""


class TorchRunner:
    """Measured runs of one workload's configs on a live device (the agent's Runner).

    ``layers`` (``goblin.layers`` / ``--goblin-layers``) measures that many
    decoder layers and one, and extrapolates the full model's step time;
    ``sample_cost_ms`` is the workload's host cost per sample.
    """

    def __init__(
        self,
        device: LiveDevice,
        fake_device: str,
        layers: int | None = None,
        sample_cost_ms: float | None = None,
    ) -> None:
        self.device = device
        self.fake_device = fake_device
        self.layers = layers
        self.sample_cost_ms = sample_cost_ms

    @property
    def info(self) -> DeviceInfo:
        return self.device.info

    @property
    def device_id(self) -> str:
        """The physical device (its lock id): xdist workers that reach the same device share
        its ``--goblin-calibrate`` noise floor under this name."""
        return self.device.lock_id

    @property
    def projector(self) -> SimulatedDevice:
        """The analytic model of this device: its catalogue entry, else the session's
        simulated device. Used only where both sides of a comparison are projected."""
        spec, _ = catalogue_spec(self.info)
        return SimulatedDevice(spec.name if spec else self.fake_device)

    def ranks(self, config: WorkloadConfig) -> WorkloadConfig:
        """``config`` as it is measured: with at most ``--goblin-max-world-size`` ranks, the
        same per-device batch and strategy (a shrunk run, labelled so in its metrics)."""
        limit = self.device.options.max_world_size
        if limit is None or config.world_size <= limit:
            return config
        return config.model_copy(update={"world_size": limit})

    def engine(self, config: WorkloadConfig) -> str:
        """The engine that measures ``config``: the session's, except that a multi-rank
        workload goes to ``rank_engine`` where ``--goblin-engine auto`` chose hf and the
        hf engine cannot launch its strategy's ranks on this device (``hf_rank_gap``)."""
        options = self.device.options
        if self._rank_gap(config) is not None and options.rank_engine is not None:
            return options.rank_engine
        return options.engine

    def _rank_gap(self, config: WorkloadConfig) -> str | None:
        """Why the session's hf engine cannot launch ``config``'s ranks here, or None."""
        if config.world_size == 1 or self.device.options.engine != "hf":
            return None
        from pytest_goblin.runner.engines import hf_rank_gap

        selected = parse_selector(self.device.options.device).kind
        # the device a worker found only where the selector leaves it open (no worker start)
        return hf_rank_gap(config.strategy, self.info.kind if selected == "auto" else selected)

    def unsupported(self, config: WorkloadConfig) -> str | None:
        """Why this device cannot run ``config`` (the item is skipped), or None."""
        if config.objective != "sft":
            return (
                f"objective {config.objective}: the measured engines train one sequence per "
                "example with no reference model; --goblin-fake projects it"
            )
        config = self.ranks(config)
        with self.device.locked(config.env_vars, ranks=config.world_size):
            response = self.device.request(
                config.env_vars,
                {
                    "op": "check",
                    "config": config.model_dump(mode="json"),
                    "engine": self.engine(config),
                },
                "while checking the config",
                config.world_size,
            )
        return response.get("reason") if response["ok"] else None

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        """Train ``config`` for ``steps`` timed steps (``--goblin-steps`` wins) and measure."""
        options = self.device.options
        steps = options.steps or steps
        ran = self.ranks(config)
        shrunk_from = config.world_size if ran.world_size < config.world_size else None
        depths = self._depths(ran.arch.layers)
        self._check_fits(ran, max(depth or ran.arch.layers for depth in depths))
        with self.device.locked(ran.env_vars, self._claims(ran), ran.world_size):
            runs = [self._measure(ran, steps, depth) for depth in depths]
        metrics = run_metrics(ran, runs, self.info, shrunk_from)
        if self.engine(ran) != options.engine:
            metrics.warnings.append(
                f"measured by the {self.engine(ran)} engine, not the {options.engine} engine "
                f"that --goblin-engine auto chose: {self._rank_gap(ran)}"
            )
        return metrics

    def _claims(self, config: WorkloadConfig) -> list[str]:
        """The devices a multi-rank run takes (their lock names, from its worker: the first
        ``world_size`` visible GPUs, the worker's own among them; none on the CPU)."""
        if config.world_size == 1:
            return []
        response = self.device.request(
            config.env_vars,
            {"op": "claims", "config": config.model_dump(mode="json")},
            "while naming the devices of a multi-rank run",
            config.world_size,
        )
        if not response["ok"]:
            raise RunFailed(response["message"])
        return list(response["claims"])

    def _check_fits(self, config: WorkloadConfig, layers: int) -> None:
        """Refuse, before the worker builds anything, a run whose projected footprint (the
        analytic model's, at the depth that would be built) exceeds the device's memory: an
        8B model in fp32 would otherwise fill host RAM for half a minute and end in a raw
        allocation error. On the CPU, say that ``--goblin-fake`` projects without a GPU."""
        from pytest_goblin.runner.analytic import AnalyticModel

        info = self.info
        spec, _ = catalogue_spec(info)
        if spec is None or info.memory_gb is None:
            return
        built = config
        if layers < config.arch.layers:
            built = config.model_copy(
                update={"model": config.arch.model_copy(update={"layers": layers})}
            )
        memory = AnalyticModel(spec).memory(built)
        if memory.total_gb <= info.memory_gb:
            return
        where = "host memory" if info.kind == "cpu" else "device memory"
        message = (
            f"oom: projected {memory.total_gb:.1f} GB of {info.memory_gb:.0f} GB {where} on "
            f"{info.name} ({memory.breakdown()}); not started"
        )
        if info.kind == "cpu":
            message += (
                "; no GPU was found, so this would train on the CPU: --goblin-fake projects "
                "the workload on a catalogue GPU without one"
            )
        raise OutOfMemory(message)

    def _depths(self, full: int) -> list[int | None]:
        """The decoder depths to run: the full model, or one layer and ``layers``."""
        wanted = self.layers
        if wanted is None or wanted >= full:
            return [None]
        deep = max(wanted, 2)
        return [None] if deep >= full else [1, deep]

    def _measure(self, config: WorkloadConfig, steps: int, layers: int | None) -> Measurement:
        message = {
            "op": "run",
            "config": config.model_dump(mode="json"),
            "steps": steps,
            "warmup": self.device.options.warmup,
            "sample_cost_s": sample_cost_s(config, self.sample_cost_ms),
            "layers": layers,
            "engine": self.engine(config),
        }
        response = self.device.request(
            config.env_vars, message, f"during a run of {steps} steps", config.world_size
        )
        if response["ok"]:
            measurement = Measurement.from_json(response["measurement"])
            if self.info.kind != "cpu" and (shared := gpu_topology.lock_dir_warning()):
                measurement.warnings.append(shared)
            return measurement
        kind, text = response["kind"], response["message"]
        if kind == "unsupported":
            raise UnsupportedConfig(text)
        if kind == "oom":
            raise OutOfMemory(f"oom: {text}")
        raise RunFailed(text)
