"""Which GPUs are this container's, decided purely from its environment and what NVML shows.

What YARN gives a container (Hadoop's NodeManager source, GPU resource plugin ``yarn.io/gpu``):
- Docker runtime: ``NvidiaDockerV2CommandPlugin`` adds ``--runtime nvidia`` and
  ``NVIDIA_VISIBLE_DEVICES=<indexes>`` (``GpuDevice.getIndex()``, nvidia-smi's index); the
  pluggable device framework's ``NvidiaGPUPluginForRuntimeV2`` (``nvidia.com/gpu``) sets it to
  minor numbers, for Docker only. The NVIDIA runtime then shows the container those GPUs
  alone, renumbered from 0, so the values mean nothing inside it.
- Default (process) runtime: ``GpuResourceHandlerImpl.preStart`` only puts the container in a
  devices cgroup denying the other GPUs' ``/dev/nvidia<minor>`` (container-executor
  ``--excluded_gpus``). No variable, no file in the work directory: the assignment (index,
  minor number, container id) stays in the NodeManager (its ResourceMappings and state store,
  shown on ``/ws/v1/node/resources/yarn.io/gpu``). Inside, the allocation is the set of GPUs
  the container may open: CUDA renumbers those from 0 (so the node's indexes would name the
  wrong GPUs), and NVML either leaves the others out the same way or answers
  NVML_ERROR_NO_PERMISSION for them; both are handled.

Precedence, first that applies:
1. ``CUDA_VISIBLE_DEVICES`` in Triton's environment (the container's, or the agent's ``env``
   setting): the operator's choice.
2. ``NVIDIA_VISIBLE_DEVICES``: under YARN's Docker (or runc) runtime, ``YARN_CONTAINER_RUNTIME_TYPE``
   says so, the runtime has applied it, so every GPU NVML shows is the container's (``void``,
   ``none`` or empty: none). As a plain process it is read like 1.
3. Otherwise every GPU this process may open: YARN's devices cgroup, or, on a node without
   GPU isolation, every GPU of the node (YARN tells a container nothing more).
Values: comma-separated NVML indexes (nvidia-smi's in this container, PCI bus order),
``GPU-<uuid>`` and ``MIG-<uuid>`` (unique prefixes too, as CUDA takes them), the older
``MIG-GPU-<uuid>/<gi>/<ci>``, ``<gpu>:<mig>`` (NVIDIA's runtime), ``all``, and
``none``/``void``/empty for no GPU. As in CUDA, a negative index ends the list (``-1`` hides
every GPU). Anything else, a GPU that is not here or not this container's, or one named twice,
is refused with one line before Triton starts.

With the process runtime Triton gets ``CUDA_VISIBLE_DEVICES`` = the chosen devices' UUIDs:
unambiguous whatever CUDA's order (fastest first by default, NVML's is PCI bus) and however
the devices cgroup renumbers. A MIG-enabled GPU becomes its MIG devices, which is how CUDA
addresses MIG. A GPU NVML cannot open is left out of that list and reported unreadable. Without
NVML the value is passed as given (indexes with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``). Under Docker
the agent changes nothing: the NVIDIA runtime already chose.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tarn_shared.errors import ConfigError

from .gpu_devices import DeviceInfo, Target

CUDA = "CUDA_VISIBLE_DEVICES"
NVIDIA = "NVIDIA_VISIBLE_DEVICES"
DEVICE_ORDER = "CUDA_DEVICE_ORDER"
RUNTIME_TYPE = "YARN_CONTAINER_RUNTIME_TYPE"
CONTAINER_RUNTIMES = ("docker", "runc")
_UUID = r"[0-9a-fA-F][0-9a-fA-F-]*"
_TOKENS = [
    ("index", re.compile(r"^-?\d+$")),
    ("mig_pair", re.compile(r"^(\d+):(\d+)$")),
    ("mig_legacy", re.compile(rf"^MIG-(GPU-{_UUID})/(\d+)/(\d+)$", re.IGNORECASE)),
    ("gpu_uuid", re.compile(rf"^GPU-{_UUID}$", re.IGNORECASE)),
    ("mig_uuid", re.compile(rf"^MIG-{_UUID}$", re.IGNORECASE)),
]


@dataclass(frozen=True)
class DeviceRef:
    """One entry of a visible-devices list, as written."""

    kind: str  # index | mig_pair | mig_legacy | gpu_uuid | mig_uuid
    text: str
    numbers: Tuple[int, ...] = ()  # index; gpu, mig; gi, ci


@dataclass(frozen=True)
class Allocation:
    source: str  # what decided, in logs and errors: "CUDA_VISIBLE_DEVICES=0,1", ...
    refs: Optional[Tuple[DeviceRef, ...]]  # None: every GPU this container may open
    containerized: bool = False  # Docker/runc: the container runtime has applied it


@dataclass(frozen=True)
class Selection:
    source: str
    targets: Optional[Tuple[Target, ...]]  # None: NVML unavailable, ``reason`` says why
    env_changes: Dict[str, Optional[str]] = field(default_factory=dict)  # None removes the variable
    reason: Optional[str] = None

    @property
    def gpu_count(self) -> Optional[int]:
        """The devices Triton gets, when known."""
        return None if self.targets is None else sum(1 for t in self.targets if t.error is None)

    def describe(self) -> str:
        if self.targets is None:
            return f"{self.source}, not verified: {self.reason}"
        shown = ", ".join(f"{t.label} ({t.uuid or 'no uuid'}{', unreadable' if t.error else ''})"
                          for t in self.targets)
        return f"{self.source}: {shown or 'no GPU'}"


def parse_devices(value: str, variable: str) -> Optional[Tuple[DeviceRef, ...]]:
    """None for ``all``; () for none. Raises ConfigError for anything else not a device."""
    text = value.strip()
    if text.lower() in ("", "none", "void"):
        return ()
    if text.lower() == "all":
        return None
    refs: List[DeviceRef] = []
    for token in (t.strip() for t in text.split(",")):
        ref = _parse_token(token, variable, value)
        if ref.kind == "index" and ref.numbers[0] < 0:
            break  # CUDA ignores the devices after an invalid index
        refs.append(ref)
    return tuple(refs)


def _parse_token(token: str, variable: str, value: str) -> DeviceRef:
    for kind, pattern in _TOKENS:
        match = pattern.match(token)
        if match:
            if kind == "mig_legacy":
                return DeviceRef(kind, match.group(1), (int(match.group(2)), int(match.group(3))))
            if kind == "index":
                return DeviceRef(kind, token, (int(token),))
            return DeviceRef(kind, token, tuple(int(g) for g in match.groups()))
    raise ConfigError(f"{variable}={value[:100]!r}: {token[:64]!r} is not a GPU index, GPU-/MIG- UUID, "
                      "<gpu>:<mig>, all or none")


def allocation_from_environment(environ: Mapping[str, str]) -> Allocation:
    containerized = environ.get(RUNTIME_TYPE, "").strip().lower() in CONTAINER_RUNTIMES
    if CUDA in environ:
        return Allocation(f"{CUDA}={environ[CUDA]}", parse_devices(environ[CUDA], CUDA), containerized)
    if NVIDIA in environ:
        refs = parse_devices(environ[NVIDIA], NVIDIA)
        if containerized:  # the NVIDIA runtime applied it: its values are the node's, not ours
            return Allocation(f"{NVIDIA}={environ[NVIDIA]} (applied by the container runtime)",
                              () if refs == () else None, True)
        return Allocation(f"{NVIDIA}={environ[NVIDIA]}", refs)
    if containerized:
        return Allocation("the GPUs the container runtime shows", None, True)
    return Allocation("the GPUs this container may open (YARN's devices cgroup)", None)


def select(environ: Mapping[str, str], inventory: Optional[Sequence[DeviceInfo]],
           unavailable: Optional[str] = None) -> Selection:
    """The GPUs to read and Triton's environment changes; ``inventory`` is None when NVML
    could not be read (``unavailable`` says why)."""
    allocation = allocation_from_environment(environ)
    if inventory is None:
        return Selection(allocation.source, None, _unverified_env(allocation, environ), unavailable)
    targets = resolve(allocation, inventory)
    usable = [t for t in targets if t.error is None]
    if targets and not usable:
        raise ConfigError(f"{allocation.source}: none of the allocated GPUs can be opened ("
                          + "; ".join(f"{t.label}: {t.error}" for t in targets) + ")")
    changes: Dict[str, Optional[str]] = {}
    if not allocation.containerized:
        changes[CUDA] = ",".join(t.uuid or str(t.gpu_index) for t in usable)
        if any(t.uuid is None for t in usable) and DEVICE_ORDER not in environ:
            changes[DEVICE_ORDER] = "PCI_BUS_ID"
    elif allocation.refs is None and environ.get(CUDA, "").strip().lower() == "all":
        changes[CUDA] = None  # "all" is not CUDA's: unset, the runtime already restricted the view
    return Selection(allocation.source, tuple(targets), changes)


def _unverified_env(allocation: Allocation, environ: Mapping[str, str]) -> Dict[str, Optional[str]]:
    if allocation.refs is None:
        return {CUDA: None} if CUDA in environ else {}
    if allocation.containerized and CUDA not in environ:
        return {}
    for ref in allocation.refs:
        if ref.kind == "mig_pair":
            raise ConfigError(f"{allocation.source}: {ref.text} names a MIG device by index, which needs NVML")
    changes: Dict[str, Optional[str]] = {CUDA: ",".join(r.text if r.kind != "mig_legacy" else
                                                         f"MIG-{r.text}/{r.numbers[0]}/{r.numbers[1]}"
                                                         for r in allocation.refs)}
    if any(r.kind == "index" for r in allocation.refs) and DEVICE_ORDER not in environ:
        changes[DEVICE_ORDER] = "PCI_BUS_ID"  # indexes are nvidia-smi's: make CUDA's the same
    return changes


def triton_environment(selection: Selection, env: Mapping[str, str]) -> Dict[str, str]:
    out = dict(env)
    for key, value in selection.env_changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def resolve(allocation: Allocation, inventory: Sequence[DeviceInfo]) -> List[Target]:
    """The targets the allocation names, in its order (NVML's for every GPU)."""
    if allocation.refs is None:
        return [t for device in inventory if not device.denied for t in expand(device)]
    targets: List[Target] = []
    seen = set()
    for ref in allocation.refs:
        for target in _find(ref, inventory, allocation.source):
            key = (target.gpu_index, target.mig_index)
            if key in seen:
                raise ConfigError(f"{allocation.source}: names {'MIG device' if target.is_mig else 'GPU'} "
                                  f"{target.label} twice")
            seen.add(key)
            targets.append(target)
    return targets


def expand(device: DeviceInfo) -> List[Target]:
    """A whole GPU, or each MIG device of a MIG-enabled one."""
    whole = Target(gpu_index=device.index, gpu_uuid=device.uuid, name=device.name, error=device.error)
    if device.error is not None or device.mig is None:
        return [whole]
    if not device.mig:
        return [Target(gpu_index=device.index, gpu_uuid=device.uuid, name=device.name,
                       error="MIG mode is on but the GPU has no MIG device")]
    return [Target(gpu_index=device.index, gpu_uuid=device.uuid, name=device.name, mig_index=m.index,
                   mig_uuid=m.uuid) for m in device.mig]


def _find(ref: DeviceRef, inventory: Sequence[DeviceInfo], source: str) -> List[Target]:
    by_index = {d.index: d for d in inventory}
    if ref.kind in ("index", "mig_pair"):
        device = by_index.get(ref.numbers[0])
        if device is None:
            raise ConfigError(f"{source}: there is no GPU {ref.numbers[0]} here ({_shown(inventory)})")
        if device.denied:
            raise ConfigError(f"{source}: GPU {device.index} is not this container's (NVML: insufficient "
                              f"permissions, YARN's devices cgroup; {_shown(inventory)})")
        if ref.kind == "index":
            return expand(device)
        migs = [m for m in device.mig or () if m.index == ref.numbers[1]]
        if not migs:
            raise ConfigError(f"{source}: GPU {device.index} has no MIG device {ref.numbers[1]}"
                              + ("" if device.mig is not None else " (MIG mode is off)"))
        return [_mig_target(device, migs[0])]
    if ref.kind == "gpu_uuid":
        device = _unique(ref.text, [(d.uuid, d) for d in inventory if d.uuid and not d.denied], source, inventory)
        return expand(device)
    pairs = [(m.uuid, (d, m)) for d in inventory if not d.denied for m in d.mig or ()]
    if ref.kind == "mig_uuid":
        device, mig = _unique(ref.text, pairs, source, inventory)
        return [_mig_target(device, mig)]
    gi, ci = ref.numbers  # the older MIG-GPU-<uuid>/<gi>/<ci>
    matches = [(d, m) for (_, (d, m)) in pairs if (d.uuid or "").lower() == ref.text.lower()
               and (m.gpu_instance_id, m.compute_instance_id) == (gi, ci)]
    if not matches:
        raise ConfigError(f"{source}: no MIG device {ref.text}/{gi}/{ci} among the GPUs this container may open")
    return [_mig_target(*matches[0])]


def _unique(text: str, candidates, source: str, inventory: Sequence[DeviceInfo]):
    found = [item for uuid, item in candidates if uuid.lower().startswith(text.lower())]
    if not found:
        raise ConfigError(f"{source}: no GPU {text} among the GPUs this container may open ({_shown(inventory)})")
    if len(found) > 1:
        raise ConfigError(f"{source}: {text} matches {len(found)} devices; give more of the UUID")
    return found[0]


def _mig_target(device: DeviceInfo, mig) -> Target:
    return Target(gpu_index=device.index, gpu_uuid=device.uuid, name=device.name, mig_index=mig.index,
                  mig_uuid=mig.uuid)


def _shown(inventory: Sequence[DeviceInfo]) -> str:
    mine = [str(d.index) for d in inventory if not d.denied]
    others = len(inventory) - len(mine)
    text = f"NVML shows GPU {', '.join(mine)}" if mine else "NVML shows no GPU this container may open"
    return text + (f", and {others} of other containers" if others else "")
