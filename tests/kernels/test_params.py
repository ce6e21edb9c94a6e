"""Every kernel's declaration (webgpu_shaders/kernels.json, read by the JS engine and by these tests) against its
shader: the Params layout matches the WGSL struct field by field, each WGSL field carries a comment with its unit, the
compiled shader wants exactly that size, and every tuning sets only override constants the shader declares. A shader
here is its file joined with the library files it includes (gpu.shader_source), as every loader compiles it."""

from __future__ import annotations

import re

import pytest

from .gpu import SHADER_DIR, Gpu, shader_source
from .kernels import KERNELS, PARAMS, tunings

STRUCT = re.compile(r"struct Params \{(.*?)\n\}", re.S)
FIELD = re.compile(r"^\s*(\w+)\s*:\s*(\w+)\s*,?\s*(//.*)?$")
UNIFORM = re.compile(r"@binding\((\d+)\)\s+var<uniform>\s+\w+\s*:\s*Params")
BINDING = re.compile(r"@binding\((\d+)\)")
OVERRIDE = re.compile(r"^override\s+(\w+)\s*:", re.M)
ENTRY = re.compile(r"@compute")
INCLUDES = sorted({f for k in KERNELS.values() for f in k.get("include", [])})


def wgsl_fields(shader: str) -> list[tuple[str, str, str]]:
    """(name, type, comment) of each field of ``struct Params`` in the shader."""
    match = STRUCT.search(shader_source(shader))
    assert match, f"{shader} declares no struct Params"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    fields = []
    for line in lines:
        m = FIELD.match(line)
        assert m, f"{shader}: cannot read Params line {line!r}"
        fields.append((m.group(1), m.group(2), m.group(3) or ""))
    return fields


def test_every_shader_has_a_layout() -> None:
    files = sorted(p.name for p in SHADER_DIR.glob("*.wgsl"))
    assert sorted({*KERNELS, *INCLUDES}) == files, "webgpu_shaders/kernels.json and webgpu_shaders/*.wgsl disagree"
    assert not set(INCLUDES) & set(KERNELS), "a library file is not a kernel"
    assert sorted(PARAMS) == sorted(KERNELS)


@pytest.mark.parametrize("library", INCLUDES)
def test_includes_are_libraries(library: str) -> None:
    """An included file holds functions, structs and overrides only: no entry point, binding or Params of its own
    (each kernel's bindings stay in its own file, in its own order)."""
    text = (SHADER_DIR / library).read_text()
    assert not ENTRY.search(text) and not BINDING.search(text) and not STRUCT.search(text), library


@pytest.mark.parametrize("shader", sorted(KERNELS))
def test_tunings_set_declared_overrides(shader: str) -> None:
    """Each tuning (gpu, and cpu / gpu_long / gpu_wide where declared) sets only overrides of the shader, as positive
    integers (a misspelt name would be rejected by the pipeline, or silently left at the shader's default by a grid)."""
    overrides = set(OVERRIDE.findall(shader_source(shader)))
    named = tunings(shader)
    allowed = {"gpu", "cpu", "gpu_long", "gpu_wide"}
    assert "gpu" in named and set(named) <= allowed, f"{shader}: tunings {sorted(named)}"
    for name, constants in named.items():
        assert constants, f"{shader} tuning {name} is empty"
        assert set(constants) <= overrides, f"{shader} tuning {name}: {sorted(set(constants) - overrides)} " \
            f"are not overrides of the shader ({sorted(overrides)})"
        assert all(isinstance(v, int) and v > 0 for v in constants.values()), f"{shader} tuning {name}: {constants}"
    if "gpu_long" in named:
        assert set(named["gpu_long"]) == set(named["gpu"]) and KERNELS[shader]["long_min_cols"] > 0
    if "gpu_wide" in named:
        assert set(named["gpu_wide"]) == set(named["gpu"]) and KERNELS[shader]["wide_min_rows"] > 0


@pytest.mark.parametrize("shader", sorted(PARAMS))
def test_params_fields(shader: str) -> None:
    fields = wgsl_fields(shader)
    assert [(n, t) for n, t, _ in fields] == [(f.name, f.kind) for f in PARAMS[shader].fields]
    for name, _, comment in fields:
        assert len(comment) > 4, f"{shader}: Params.{name} needs a comment giving its unit"


@pytest.mark.parametrize("shader", sorted(PARAMS))
def test_params_size_matches_compiled_shader(gpu: Gpu, shader: str) -> None:
    """The auto layout's minimum binding size of the uniform is the WGSL struct's size: a buffer of the Python size
    binds, one 4 bytes smaller does not."""
    import wgpu

    text = shader_source(shader)
    found = UNIFORM.search(text)
    assert found, f"{shader} binds no Params uniform"
    uniform = int(found.group(1))  # the first is entry point main's
    pipe = gpu.pipeline(shader, "main")
    size = PARAMS[shader].size
    storage = [{"buffer": gpu.zeros(4096), "offset": 0, "size": 4096} for _ in range(uniform)]
    params_buffer = gpu.uniform(bytes(max(size, 16)))

    def bind(params_size: int) -> None:
        resources = [*storage, {"buffer": params_buffer, "offset": 0, "size": params_size}]
        entries = [{"binding": i, "resource": r} for i, r in enumerate(resources)]
        gpu.device.create_bind_group(layout=pipe.get_bind_group_layout(0), entries=entries)

    bind(size)
    if size > 4:  # (a one-field struct is 4 bytes at least; a zero-sized binding is invalid anyway)
        with pytest.raises(wgpu.GPUValidationError):
            bind(size - 4)
