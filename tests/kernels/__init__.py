"""WGSL kernel tests: each kernel of webgpu_shaders/ against a numpy reference, on lavapipe through wgpu."""
