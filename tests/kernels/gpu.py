"""A small WebGPU harness for kernel tests (and the kernel benchmark): one device, compiled pipelines, buffers.

Runs the WGSL files of webgpu_shaders/ through the Python ``wgpu`` package (wgpu-native), each kernel joined with the
library files its kernels.json entry includes (shader_source, as app/engine/gpu/kernels.js's shaderSource). On the
build machines the adapter is lavapipe (Mesa's CPU Vulkan driver, Debian package mesa-vulkan-drivers); on a GPU
machine it is the GPU.
Bindings are passed as a list in binding order (inputs, outputs, then the Params uniform), as every kernel declares
them; the pipelines use ``layout="auto"``, so each entry point binds exactly the variables it uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SHADER_DIR = Path(__file__).resolve().parents[2] / "webgpu_shaders"
MAX_GROUPS_PER_DIM = 65535  # WebGPU's default maxComputeWorkgroupsPerDimension
NO_ADAPTER = "no WebGPU adapter found: install Mesa's Vulkan drivers (apt-get install -y mesa-vulkan-drivers)"

try:
    import wgpu
except ImportError as exc:  # a one-line reason instead of a traceback deep inside a test
    raise ImportError("the kernel tests need the wgpu package: pip install wgpu==0.32.0") from exc


class NoAdapterError(RuntimeError):
    pass


def _select_vulkan() -> None:
    """Ask wgpu-native for Vulkan adapters only: lavapipe and the NVIDIA driver both speak it (GL would be a second,
    less faithful path to the same CPU or GPU)."""
    from wgpu.backends.wgpu_native import extras

    try:
        extras.set_instance_extras(backends=["Vulkan"])
    except RuntimeError:
        pass  # the instance exists already (set once per process)


@lru_cache(maxsize=1)
def _includes() -> dict[str, list[str]]:
    kernels = json.loads((SHADER_DIR / "kernels.json").read_text())["kernels"]
    return {name: list(k.get("include", [])) for name, k in kernels.items()}


def shader_source(shader: str) -> str:
    """The WGSL that compiles as ``shader`` (a path relative to webgpu_shaders/): each library file its kernels.json
    entry lists in "include", then its own file (a file kernels.json does not name: itself alone). Includes first, as
    app/engine/gpu/kernels.js's shaderSource says why."""
    files = [*_includes().get(shader, []), shader]
    return "\n".join((SHADER_DIR / f).read_text() for f in files)


def grid_1d(groups: int) -> tuple[int, int, int]:
    """A dispatch grid of at least ``groups`` workgroups, folded into y past 65535; kernels linearize it as
    ``wid.x + wid.y * num_workgroups.x`` and ignore workgroups past the ones they need."""
    groups = max(groups, 1)
    if groups <= MAX_GROUPS_PER_DIM:
        return (groups, 1, 1)
    return (MAX_GROUPS_PER_DIM, math.ceil(groups / MAX_GROUPS_PER_DIM), 1)


class Gpu:
    """One wgpu device plus the few calls the tests need."""

    def __init__(self, prefer_gpu: bool = True) -> None:
        _select_vulkan()
        adapters = wgpu.gpu.enumerate_adapters_sync()
        if not adapters:
            raise NoAdapterError(NO_ADAPTER)
        # the bench wants the real GPU where there is one; tests want lavapipe (what CI has) for repeatable runs
        adapters.sort(key=lambda a: (a.info.get("adapter_type") != "CPU") != prefer_gpu)
        self.adapter = adapters[0]
        limits = self.adapter.limits
        wanted = {
            "max-storage-buffer-binding-size": min(limits["max-storage-buffer-binding-size"], 1 << 30),
            "max-buffer-size": min(limits["max-buffer-size"], 1 << 31),
            # as app/engine/gpu/probe.js asks: room for matmul tiles of 128 rows by 128 tokens where offered
            "max-compute-workgroup-storage-size": min(limits["max-compute-workgroup-storage-size"], 32768),
        }
        self.device = self.adapter.request_device_sync(required_limits=wanted)
        self.storage_usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        self._modules: dict[str, wgpu.GPUShaderModule] = {}
        self._pipelines: dict[tuple[str, str, tuple[tuple[str, float], ...]], wgpu.GPUComputePipeline] = {}

    @property
    def description(self) -> str:
        info = self.adapter.info
        return f"{info.get('device', '?')} ({info.get('backend_type', '?')}, {info.get('description', '')})"

    # --- pipelines ------------------------------------------------------------------------------------------------

    def module(self, shader: str) -> wgpu.GPUShaderModule:
        if shader not in self._modules:
            code = shader_source(shader)
            self._modules[shader] = self.device.create_shader_module(label=shader, code=code)
        return self._modules[shader]

    def pipeline(
        self, shader: str, entry: str = "main", constants: Mapping[str, float] | None = None
    ) -> wgpu.GPUComputePipeline:
        """Compile ``entry`` of ``webgpu_shaders/<shader>`` with override constants (bools as 0/1); cached."""
        key = (shader, entry, tuple(sorted((constants or {}).items())))
        if key not in self._pipelines:
            stage = {"module": self.module(shader), "entry_point": entry, "constants": dict(constants or {})}
            self._pipelines[key] = self.device.create_compute_pipeline(label=f"{shader}:{entry}", layout="auto",
                                                                       compute=stage)
        return self._pipelines[key]

    # --- buffers --------------------------------------------------------------------------------------------------

    def storage(self, data: npt.NDArray[np.generic] | bytes) -> wgpu.GPUBuffer:
        """A storage buffer holding ``data`` (padded to a multiple of 4 bytes)."""
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        raw += b"\0" * (-len(raw) % 4)
        return self.device.create_buffer_with_data(data=raw or b"\0" * 4, usage=self.storage_usage)

    def zeros(self, nbytes: int) -> wgpu.GPUBuffer:
        return self.device.create_buffer(size=max(4, (nbytes + 3) // 4 * 4), usage=self.storage_usage)

    def uniform(self, raw: bytes) -> wgpu.GPUBuffer:
        usage = wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer_with_data(data=raw, usage=usage)

    def read(self, buffer: wgpu.GPUBuffer, dtype: npt.DTypeLike = np.float32) -> npt.NDArray[Any]:
        return np.frombuffer(bytes(self.device.queue.read_buffer(buffer)), dtype=dtype).copy()

    # --- dispatch -------------------------------------------------------------------------------------------------

    def bind(self, pipeline: wgpu.GPUComputePipeline, buffers: list[wgpu.GPUBuffer | None]) -> wgpu.GPUBindGroup:
        """``buffers[i]`` at binding i; None leaves binding i out (an entry point that does not use it)."""
        entries = [{"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}}
                   for i, b in enumerate(buffers) if b is not None]
        return self.device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)

    def run(self, pipeline: wgpu.GPUComputePipeline, buffers: list[wgpu.GPUBuffer | None],
            grid: tuple[int, int, int]) -> None:
        """One dispatch of ``pipeline`` over ``grid`` workgroups with ``buffers`` bound in binding order (None: a
        binding the entry point leaves out)."""
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cpass.set_pipeline(pipeline)
        cpass.set_bind_group(0, self.bind(pipeline, buffers))
        cpass.dispatch_workgroups(*grid)
        cpass.end()
        self.device.queue.submit([encoder.finish()])


@lru_cache(maxsize=1)
def shared_gpu() -> Gpu:
    """The tests' one device (creating devices on lavapipe costs time)."""
    return Gpu(prefer_gpu=False)
