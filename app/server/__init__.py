"""`fieldllm serve`: the app folder plus an OpenAI-compatible fallback API for devices without WebGPU.

Composed in ``app.py`` (``create_app``); settings in ``settings.py``. Importing this package imports nothing heavy:
the command line reads its flags from ``settings`` without pulling in Starlette or numpy.
"""
