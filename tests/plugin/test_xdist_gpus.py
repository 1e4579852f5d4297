"""pytest-xdist across GPUs: which GPUs are visible, how workers are given them, and what
the run says when they share."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin.plugin import xdist_gpus
from pytest_goblin.plugin.settings import SETTINGS_KEY, GoblinSettings
from pytest_goblin.plugin.xdist_gpus import GpuPlan, GpuWorkers, XdistGpus, plan
from pytest_goblin.report import json_report
from pytest_goblin.runner.visible import (
    CUDA,
    HIP,
    ROCR,
    UNPINNED,
    Pin,
    environ_for,
    installed,
    parse,
    physical_id,
    pinned_variables,
    pins,
)
from pytest_goblin.schemas import WorkloadResult

MEASURED = GoblinSettings(enabled=True)


@pytest.fixture
def no_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's visible-devices variables must not leak into a test that sets its own."""
    for var in (CUDA, HIP, ROCR, UNPINNED, "PYTEST_XDIST_AUTO_NUM_WORKERS"):
        monkeypatch.delenv(var, raising=False)


# --- reading a visible-devices variable ----------------------------------------------------


def test_a_comma_list_gives_its_entries_in_order() -> None:
    assert parse("3,5") == ["3", "5"]
    assert parse(" 0 , 2 ") == ["0", "2"]


def test_an_empty_value_hides_every_gpu() -> None:
    assert parse("") == []


def test_a_negative_entry_ends_the_list() -> None:
    assert parse("0,-1,2") == ["0"]
    assert parse("-1") == []


def test_uuid_entries_are_kept_as_they_are() -> None:
    assert parse("GPU-8932f937-d72c,MIG-GPU-5c89/1/0") == ["GPU-8932f937-d72c", "MIG-GPU-5c89/1/0"]


def test_a_repeated_entry_hides_every_gpu() -> None:
    assert parse("1,1") == []


# --- which GPUs a process may use -----------------------------------------------------------


def test_cuda_visible_devices_lists_the_gpus_on_cuda() -> None:
    assert pins({CUDA: "3,5"}, "cuda", 8) == [Pin(CUDA, "3"), Pin(CUDA, "5")]


def test_without_a_variable_the_driver_count_gives_the_gpus() -> None:
    assert pins({}, "cuda", 2) == [Pin(CUDA, "0"), Pin(CUDA, "1")]
    assert pins({}, "rocm", 2) == [Pin(HIP, "0"), Pin(HIP, "1")]


def test_an_empty_variable_means_no_gpu_even_where_the_driver_shows_some() -> None:
    assert pins({CUDA: ""}, "cuda", 4) == []
    assert pins({HIP: ""}, "rocm", 4) == []


def test_on_rocm_hip_visible_devices_wins_over_cuda_visible_devices() -> None:
    assert pins({HIP: "1", CUDA: "0,1,2"}, "rocm", 4) == [Pin(HIP, "1")]


def test_on_rocm_a_cuda_visible_devices_list_is_pinned_through_hip() -> None:
    assert pins({CUDA: "3,5"}, "rocm", 8) == [Pin(HIP, "3"), Pin(HIP, "5")]


def test_on_rocm_hip_indices_count_within_rocr_visible_devices() -> None:
    """ROCR's layer stays in place under the pin; HIP picks the n-th GPU it left visible."""
    assert pins({ROCR: "2,GPU-4b2c1a9f"}, "rocm", 8) == [Pin(HIP, "0"), Pin(HIP, "1")]
    assert pins({ROCR: "2,3,6", HIP: "0,2"}, "rocm", 8) == [Pin(HIP, "0"), Pin(HIP, "2")]


def test_on_cuda_the_rocm_variables_are_ignored() -> None:
    assert pins({HIP: "0", ROCR: "1"}, "cuda", 2) == [Pin(CUDA, "0"), Pin(CUDA, "1")]


def test_without_a_driver_the_variable_the_user_set_is_pinned() -> None:
    assert pins({CUDA: "3,5"}, None, 0) == [Pin(CUDA, "3"), Pin(CUDA, "5")]
    assert pins({HIP: "1", CUDA: "0,1"}, None, 0) == [Pin(HIP, "1")]
    assert pins({}, None, 0) == []


def test_kfd_topology_nodes_with_simds_are_the_amd_gpus(tmp_path: Path) -> None:
    nodes, dri = tmp_path / "nodes", tmp_path / "dri"
    dri.mkdir()
    for node, cores, simds in (("0", 8, 0), ("1", 0, 304), ("2", 0, 304)):
        (nodes / node).mkdir(parents=True)
        (nodes / node / "properties").write_text(
            f"cpu_cores_count {cores}\nsimd_count {simds}\ndrm_render_minor {127 + int(node)}\n"
        )
        (dri / f"renderD{127 + int(node)}").write_text("")
    assert installed(nodes, tmp_path / "nvidia", dri) == ("rocm", 2)


def test_nvidia_driver_directories_are_the_nvidia_gpus(tmp_path: Path) -> None:
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (tmp_path / "gpus" / bus).mkdir(parents=True)
    assert installed(tmp_path / "kfd", tmp_path / "gpus") == ("cuda", 2)
    assert installed(tmp_path / "kfd", tmp_path / "none") == (None, 0)


# --- pinning, and selectors that name an index ----------------------------------------------


def test_pinning_sets_one_variable_and_remembers_the_variables_as_they_were() -> None:
    env = {CUDA: "3,5", "PATH": "/bin"}
    env.update(pinned_variables(env, Pin(CUDA, "5")))
    assert env[CUDA] == "5"
    assert json.loads(env[UNPINNED]) == {HIP: None, CUDA: "3,5", ROCR: None}


def test_a_selector_without_an_index_keeps_the_pinned_gpu() -> None:
    env = {CUDA: "3,5"}
    env.update(pinned_variables(env, Pin(CUDA, "5")))
    assert environ_for("auto", env)[CUDA] == "5"
    assert environ_for("cuda", env)[CUDA] == "5"


def test_a_selector_naming_an_index_sees_the_gpus_as_before_pinning() -> None:
    env = {ROCR: "2,3", "PATH": "/bin"}
    env.update(pinned_variables(env, Pin(HIP, "1")))
    assert environ_for("rocm:0", env) == {ROCR: "2,3", "PATH": "/bin"}


def test_without_pinning_every_selector_keeps_the_environment() -> None:
    assert environ_for("cuda:1", {CUDA: "3,5"}) == {CUDA: "3,5"}


# --- the lock names the physical GPU ---------------------------------------------------------


def test_a_pinned_worker_locks_the_gpu_an_unpinned_process_locks() -> None:
    assert physical_id("cuda", 0, {CUDA: "5"}) == physical_id("cuda", 1, {CUDA: "3,5"}) == "cuda-5"


def test_on_rocm_the_lock_follows_hip_through_rocr() -> None:
    assert physical_id("rocm", 0, {ROCR: "2,3", HIP: "1"}) == "rocm-3"
    assert physical_id("rocm", 0, {CUDA: "1"}) == "rocm-1"


def test_a_uuid_entry_names_the_lock() -> None:
    assert physical_id("rocm", 0, {ROCR: "GPU-4b2c1a9f", HIP: "0"}) == "rocm-GPU-4b2c1a9f"


def test_without_variables_the_lock_names_the_index() -> None:
    assert physical_id("cuda", 2, {}) == "cuda-2"


# --- the plan: which GPUs the workers are spread over ---------------------------------------


def test_a_measured_run_spreads_workers_over_the_visible_gpus() -> None:
    assert plan(MEASURED, {CUDA: "3,5"}, None, 0) == GpuPlan(2, (Pin(CUDA, "3"), Pin(CUDA, "5")))


@pytest.mark.parametrize(
    "settings",
    [
        GoblinSettings(enabled=True, fake=True),
        GoblinSettings(enabled=True, device="cpu"),
        GoblinSettings(),
    ],
    ids=["fake", "cpu", "without-goblin"],
)
def test_fake_mode_and_the_cpu_spread_nothing(settings: GoblinSettings) -> None:
    assert plan(settings, {CUDA: "3,5"}, "cuda", 2) is None


def test_no_visible_gpu_spreads_nothing() -> None:
    assert plan(MEASURED, {}, None, 0) is None


def test_a_device_naming_an_index_is_one_gpu_with_nothing_to_pin() -> None:
    assert plan(GoblinSettings(enabled=True, device="cuda:1"), {CUDA: "3,5"}, "cuda", 2) == GpuPlan(
        1
    )


def test_workers_beyond_the_gpu_count_take_the_gpus_round_robin() -> None:
    gpus = plan(MEASURED, {CUDA: "3,5"}, None, 0)
    assert gpus is not None
    assert [str(gpus.pin_for(worker)) for worker in range(5)] == [
        f"{CUDA}=3",
        f"{CUDA}=5",
        f"{CUDA}=3",
        f"{CUDA}=5",
        f"{CUDA}=3",
    ]


# --- the controller's hooks --------------------------------------------------------------


def configure_nodes(
    plugin: XdistGpus, settings: GoblinSettings, workerids: list[str], spec: str = "popen"
) -> list[dict[str, Any]]:
    """``pytest_configure_node`` for each worker, as xdist's controller calls it."""
    execnet = pytest.importorskip("execnet")
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[SETTINGS_KEY] = settings
    nodes = [
        SimpleNamespace(
            config=config,
            gateway=SimpleNamespace(spec=execnet.XSpec(spec)),
            workerinput={"workerid": workerid, "workercount": 3},
        )
        for workerid in workerids
    ]
    for node in nodes:
        plugin.pytest_configure_node(node)
    return [node.workerinput for node in nodes]


def test_each_worker_is_given_its_gpu_and_a_restarted_worker_the_same(
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    monkeypatch.setenv(CUDA, "3,5")
    monkeypatch.setattr(xdist_gpus, "installed", lambda: (None, 0))
    given = configure_nodes(XdistGpus(), MEASURED, ["gw0", "gw1", "gw2", "gw1"])
    assert [w[xdist_gpus.WORKERINPUT_KEY] for w in given] == [
        [CUDA, "3"],
        [CUDA, "5"],
        [CUDA, "3"],
        [CUDA, "5"],
    ]


@pytest.mark.parametrize(
    "spec", ["popen//env:CUDA_VISIBLE_DEVICES=1", "ssh=gpu-host"], ids=["pinned-by-tx", "remote"]
)
def test_a_worker_pinned_by_its_tx_spec_or_on_another_machine_is_given_no_gpu(
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
    spec: str,
) -> None:
    monkeypatch.setenv(CUDA, "3,5")
    given = configure_nodes(XdistGpus(), MEASURED, ["gw0"], spec)
    assert xdist_gpus.WORKERINPUT_KEY not in given[0]


def test_a_device_naming_an_index_gives_the_workers_no_gpu_but_they_share_it(
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    monkeypatch.setenv(CUDA, "3,5")
    plugin = XdistGpus()
    given = configure_nodes(
        plugin, GoblinSettings(enabled=True, device="cuda:1"), ["gw0", "gw1", "gw2"]
    )
    assert all(xdist_gpus.WORKERINPUT_KEY not in w for w in given)
    assert plugin.spread() == GpuWorkers(workers=3, gpus=1)


def test_the_summary_says_when_workers_outnumber_gpus() -> None:
    assert GpuWorkers(8, 2).shared
    assert GpuWorkers(8, 2).summary_line() == (
        "goblin: 8 xdist workers share 2 GPUs: benchmarks on a shared GPU wait for its lock"
    )
    assert not GpuWorkers(2, 2).shared


def test_the_json_report_records_workers_and_gpus(failed: WorkloadResult) -> None:
    document = json_report.build(
        [failed], failed.device, "planner", 0.1, fake=False, parallel=GpuWorkers(3, 2)
    )
    assert document["parallel"] == {"workers": 3, "gpus": 2, "shared": True}
    assert json_report.build([failed], failed.device, "planner", 0.1, fake=True)["parallel"] is None


def test_auto_starts_one_worker_per_visible_gpu(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv(CUDA, "0,1,2,3,4,5,6")
    config = pytester.parseconfig("--goblin")
    assert config.hook.pytest_xdist_auto_num_workers(config=config) == 7


@pytest.mark.parametrize(
    "args", [["--goblin-fake"], ["--goblin-device", "cpu"]], ids=["fake", "cpu"]
)
def test_auto_is_xdists_own_count_in_fake_mode_and_on_the_cpu(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
    args: list[str],
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv(CUDA, "0,1,2,3,4,5,6")
    config = pytester.parseconfig("--goblin", *args)
    plugin = config.pluginmanager.get_plugin(xdist_gpus.PLUGIN_NAME)
    assert plugin.pytest_xdist_auto_num_workers(config) is None


def test_auto_is_xdists_own_count_when_pytest_xdist_auto_num_workers_is_set(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv(CUDA, "0,1,2,3,4,5,6")
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    config = pytester.parseconfig("--goblin")
    assert config.hook.pytest_xdist_auto_num_workers(config=config) == 3


def test_without_goblin_the_xdist_hooks_are_not_registered(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    config = pytester.parseconfig()
    assert config.pluginmanager.get_plugin(xdist_gpus.PLUGIN_NAME) is None


# --- end to end under xdist -------------------------------------------------------------

RECORD_ENV = f"""
import json, os
from pathlib import Path

def pytest_configure(config):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        seen = {{var: os.environ.get(var) for var in ({HIP!r}, {CUDA!r})}}
        Path(f"env-{{worker}}.json").write_text(json.dumps(seen))
"""

RIG = """
from pytest_goblin.runner.device_session import SimulatedDevice


class Rig:
    '''Numbers from the analytic model, reported as measured: no torch in the workers.'''

    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Rig"})

    def unsupported(self, config):
        return None

    def run(self, config, steps):
        return self.projector.run(config, steps).model_copy(update={"projected": False})


def pytest_goblin_make_runner(device, settings):
    return Rig() if device is None and not settings.fake else None
"""


def pinned_gpus(pytester: pytest.Pytester) -> list[str]:
    """The one GPU each worker sees: HIP's variable where a ROCm driver made it the pin,
    else CUDA's."""
    seen = [json.loads(path.read_text()) for path in sorted(pytester.path.glob("env-*.json"))]
    return sorted(env[HIP] or env[CUDA] for env in seen)


def test_auto_under_xdist_gives_each_of_two_gpus_its_own_worker(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv(CUDA, "3,5")
    pytester.makeconftest(RECORD_ENV)
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--goblin", "-n", "auto", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert pinned_gpus(pytester) == ["3", "5"]


def test_three_workers_on_two_gpus_share_them_and_the_run_says_so(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    no_visible_devices: None,
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv(CUDA, "3,5")
    pytester.makeconftest(RECORD_ENV + RIG)
    for name, text in (("bad", MISTUNED_YAML), ("good", TUNED_YAML)):
        (pytester.path / f"{name}.goblin.yaml").write_text(text)
    result = pytester.runpytest_subprocess(
        "--goblin", "-n", "3", "-p", "no:cacheprovider", "--goblin-json", "out.json"
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["goblin: 3 xdist workers share 2 GPUs: benchmarks on a shared GPU wait for its lock"]
    )
    document = json.loads((pytester.path / "out.json").read_text())
    assert document["parallel"] == {"workers": 3, "gpus": 2, "shared": True}
    assert pinned_gpus(pytester) == ["3", "3", "5"]
