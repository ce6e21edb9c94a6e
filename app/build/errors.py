"""Build failures: one class per cause, each message saying what to do (model packages use model_prep's)."""

from __future__ import annotations

from model_prep.errors import FieldllmError, InputError, PackageError


class BuildError(FieldllmError):
    """Base class; the CLI prints the message and exits non-zero."""


class MissingNodeModulesError(BuildError):
    """node_modules lacks a vendored npm package, or holds another version than package.json pins."""


class MissingSourceError(BuildError):
    """A file the app needs (template, page script, engine, shader) is not in the source tree."""


class WasmBuildError(BuildError):
    """The CPU engine (cpu_engine.c) could not be compiled to WebAssembly: clang or lld missing, or a compile error."""


class RulesFileError(BuildError):
    """The rules file (`--rules`) or the tasks file cannot be read or is not one the app can use."""


__all__ = ["BuildError", "InputError", "MissingNodeModulesError", "MissingSourceError", "PackageError",
           "RulesFileError", "WasmBuildError"]
