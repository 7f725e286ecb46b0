"""From what YARN gives a container (its environment, the GPUs NVML lets it open) to the
devices read and Triton's CUDA_VISIBLE_DEVICES: pure functions over plain inventories."""
from pathlib import Path

import pytest

from tarn_shared.errors import ConfigError
from tarn_node_agent.gpu_allocation import (allocation_from_environment, parse_devices, select,
                                            triton_environment)
from tarn_node_agent.gpu_devices import DeviceInfo, MigInfo
from tarn_node_agent.launch import TritonOptions, TritonPorts, plan_launch

A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
C = "GPU-cccccccc-1111-2222-3333-444444444444"
M0 = "MIG-0d0d0d0d-1111-2222-3333-444444444444"
M1 = "MIG-1e1e1e1e-1111-2222-3333-444444444444"
MIG_GPU = DeviceInfo(2, C, "H100", mig=(MigInfo(0, M0, gpu_instance_id=1, compute_instance_id=0),
                                         MigInfo(1, M1, gpu_instance_id=2, compute_instance_id=0)))
NODE = [DeviceInfo(0, A, "A100"), DeviceInfo(1, B, "A100"), MIG_GPU]
NO_NVML = "NVML unavailable: NVML Shared Library Not Found"


def chosen(selection):
    return [t.label for t in selection.targets]


def cuda(selection, env=None):
    return triton_environment(selection, env or {}).get("CUDA_VISIBLE_DEVICES")


# -- reading the variables

@pytest.mark.parametrize("value, kinds", [
    ("0,1", ["index", "index"]),
    (f" {A} , {M0} ", ["gpu_uuid", "mig_uuid"]),
    ("0:1", ["mig_pair"]),
    (f"MIG-{C}/1/0", ["mig_legacy"]),
    ("0,-1,1", ["index"]),  # as CUDA does: a negative index ends the list
])
def test_visible_devices_lists_are_read_entry_by_entry(value, kinds):
    assert [r.kind for r in parse_devices(value, "CUDA_VISIBLE_DEVICES")] == kinds


@pytest.mark.parametrize("value", ["", "none", "void", "VOID", "-1"])
def test_empty_none_void_and_minus_one_mean_no_gpu(value):
    assert parse_devices(value, "NVIDIA_VISIBLE_DEVICES") == ()


def test_all_means_every_gpu_the_container_may_open():
    assert parse_devices("all", "NVIDIA_VISIBLE_DEVICES") is None


@pytest.mark.parametrize("value", ["gpu0", "0,,1", "0;1", "GPU-xyz", "1.5"])
def test_anything_else_is_refused_with_one_line_naming_the_variable(value):
    with pytest.raises(ConfigError) as info:
        parse_devices(value, "CUDA_VISIBLE_DEVICES")
    assert "CUDA_VISIBLE_DEVICES=" in str(info.value) and "\n" not in str(info.value)


def test_cuda_visible_devices_comes_before_nvidia_visible_devices():
    allocation = allocation_from_environment({"CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": "0"})
    assert allocation.source == "CUDA_VISIBLE_DEVICES=1" and [r.text for r in allocation.refs] == ["1"]


@pytest.mark.parametrize("runtime", ["docker", "runc"])
def test_under_a_container_runtime_nvidia_visible_devices_is_already_applied(runtime):
    # YARN's nvidia-docker v2 plugin passes the node's indexes; inside, the runtime shows those GPUs alone.
    allocation = allocation_from_environment({"NVIDIA_VISIBLE_DEVICES": "5,7", "YARN_CONTAINER_RUNTIME_TYPE": runtime})
    assert allocation.containerized and allocation.refs is None
    void = allocation_from_environment({"NVIDIA_VISIBLE_DEVICES": "void", "YARN_CONTAINER_RUNTIME_TYPE": runtime})
    assert void.refs == ()


def test_without_variables_the_process_runtime_takes_the_devices_cgroup():
    allocation = allocation_from_environment({})
    assert allocation.refs is None and not allocation.containerized and "devices cgroup" in allocation.source


# -- choosing the devices, process runtime

def test_indexes_become_uuids_for_triton_in_the_order_given():
    selection = select({"CUDA_VISIBLE_DEVICES": "1,0"}, NODE)
    assert chosen(selection) == ["1", "0"] and cuda(selection) == f"{B},{A}"
    assert selection.gpu_count == 2


def test_nvidia_visible_devices_of_a_plain_process_sets_cuda_visible_devices():
    selection = select({"NVIDIA_VISIBLE_DEVICES": B}, NODE)
    assert chosen(selection) == ["1"] and cuda(selection) == B


def test_yarn_devices_cgroup_leaves_only_the_gpus_the_container_may_open():
    node = [DeviceInfo(0, denied=True), DeviceInfo(1, B, "A100"), DeviceInfo(2, denied=True)]
    selection = select({}, node)
    assert chosen(selection) == ["1"] and cuda(selection) == B


def test_a_container_without_a_gpu_hides_every_gpu_from_triton():
    selection = select({}, [DeviceInfo(0, denied=True), DeviceInfo(1, denied=True)])
    assert selection.targets == () and selection.gpu_count == 0 and cuda(selection) == ""
    assert cuda(select({"NVIDIA_VISIBLE_DEVICES": "void"}, NODE)) == ""


def test_a_gpu_that_is_not_here_is_refused_naming_what_is():
    with pytest.raises(ConfigError, match=r"CUDA_VISIBLE_DEVICES=5: there is no GPU 5 here \(NVML shows GPU 0, 1, 2\)"):
        select({"CUDA_VISIBLE_DEVICES": "5"}, NODE)
    with pytest.raises(ConfigError, match="no GPU GPU-dddd"):
        select({"CUDA_VISIBLE_DEVICES": "GPU-dddd"}, NODE)


def test_another_containers_gpu_is_refused():
    node = [DeviceInfo(0, denied=True), DeviceInfo(1, B)]
    with pytest.raises(ConfigError, match="GPU 0 is not this container's .*NVML shows GPU 1, and 1 of other"):
        select({"CUDA_VISIBLE_DEVICES": "0"}, node)


def test_a_gpu_named_twice_is_refused():
    with pytest.raises(ConfigError, match="names GPU 0 twice"):
        select({"CUDA_VISIBLE_DEVICES": f"0,{A}"}, NODE)


def test_uuid_prefixes_work_when_unique():
    assert chosen(select({"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, NODE)) == ["1"]
    twins = [DeviceInfo(0, "GPU-abc1-0000"), DeviceInfo(1, "GPU-abc2-0000")]
    with pytest.raises(ConfigError, match="GPU-abc matches 2 devices"):
        select({"CUDA_VISIBLE_DEVICES": "GPU-abc"}, twins)


def test_a_gpu_nvml_cannot_open_is_reported_unreadable_and_left_out_of_tritons_list():
    node = [DeviceInfo(0, A), DeviceInfo(1, error="NVML: Unknown Error")]
    selection = select({}, node)
    assert chosen(selection) == ["0", "1"] and selection.targets[1].error == "NVML: Unknown Error"
    assert cuda(selection) == A and selection.gpu_count == 1
    with pytest.raises(ConfigError, match="none of the allocated GPUs can be opened"):
        select({}, [DeviceInfo(0, error="NVML: GPU is lost")])


# -- MIG

def test_a_mig_enabled_gpu_counts_as_its_mig_devices():
    selection = select({"CUDA_VISIBLE_DEVICES": "2"}, NODE)
    assert chosen(selection) == ["2:0", "2:1"] and cuda(selection) == f"{M0},{M1}"
    assert selection.gpu_count == 2 and all(t.gpu_uuid == C for t in selection.targets)
    everything = select({}, NODE)
    assert chosen(everything) == ["0", "1", "2:0", "2:1"] and everything.gpu_count == 4


@pytest.mark.parametrize("value", [M1, "MIG-1e1e", "2:1", f"MIG-{C}/2/0"])
def test_one_mig_device_is_found_by_uuid_pair_or_the_older_name(value):
    selection = select({"NVIDIA_VISIBLE_DEVICES": value}, NODE)
    assert chosen(selection) == ["2:1"] and cuda(selection) == M1


def test_mig_mode_without_mig_devices_is_unreadable_not_a_gpu():
    node = [DeviceInfo(0, A), DeviceInfo(1, B, mig=())]
    selection = select({}, node)
    assert selection.targets[1].error.startswith("MIG mode is on") and cuda(selection) == A


def test_mig_devices_named_twice_or_absent_are_refused():
    with pytest.raises(ConfigError, match="names MIG device 2:0 twice"):
        select({"CUDA_VISIBLE_DEVICES": "2,2:0"}, NODE)
    with pytest.raises(ConfigError, match="GPU 0 has no MIG device 0 \\(MIG mode is off\\)"):
        select({"CUDA_VISIBLE_DEVICES": "0:0"}, NODE)


# -- Docker, and no NVML

def test_under_docker_the_agent_reads_what_the_container_shows_and_changes_nothing():
    env = {"NVIDIA_VISIBLE_DEVICES": "3", "YARN_CONTAINER_RUNTIME_TYPE": "docker"}
    selection = select(env, [DeviceInfo(0, A)])  # the node's GPU 3 is the container's 0
    assert chosen(selection) == ["0"] and selection.env_changes == {}
    assert triton_environment(selection, env) == env


def test_without_nvml_the_value_is_passed_with_pci_bus_order_for_indexes():
    selection = select({"CUDA_VISIBLE_DEVICES": "0,1"}, None, NO_NVML)
    assert selection.targets is None and selection.gpu_count is None and NO_NVML in selection.describe()
    env = triton_environment(selection, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    mine = select({"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, None, NO_NVML)
    assert "CUDA_DEVICE_ORDER" not in mine.env_changes
    assert triton_environment(select({"NVIDIA_VISIBLE_DEVICES": B}, None, NO_NVML), {}) == {"CUDA_VISIBLE_DEVICES": B}


def test_without_nvml_all_unsets_the_variable_and_no_variable_changes_nothing():
    assert triton_environment(select({"CUDA_VISIBLE_DEVICES": "all"}, None, NO_NVML),
                              {"CUDA_VISIBLE_DEVICES": "all", "X": "1"}) == {"X": "1"}
    assert select({}, None, NO_NVML).env_changes == {}
    with pytest.raises(ConfigError, match="needs NVML"):
        select({"CUDA_VISIBLE_DEVICES": "0:1"}, None, NO_NVML)


# -- the launch

def test_tensor_and_pipeline_parallelism_need_as_many_allocated_gpus():
    options = TritonOptions(executable="tritonserver", model_repository=Path("/m"), bind="0.0.0.0",
                            ports=TritonPorts(8000, 8001, 8002), model_control_mode="none", load_models=(),
                            exit_timeout_s=30, tp=2, parallel_backend="vllm")
    engine = {"llm": '{"model": "m"}'}
    with pytest.raises(ConfigError, match="tp x pp = 2 needs 2 GPUs, but 1 is allocated"):
        plan_launch(options, {"llm": "vllm"}, engine, {}, gpu_count=1)
    overlay = Path("/container/tarn-overlay")
    assert plan_launch(options, {"llm": "vllm"}, engine, {}, gpu_count=2, overlay=overlay).parallelism.startswith("vllm")
    assert plan_launch(options, {"llm": "vllm"}, engine, {}, gpu_count=None, overlay=overlay)  # unknown: Triton finds out
