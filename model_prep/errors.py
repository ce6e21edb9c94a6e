"""User-facing errors: each message is one line saying what is wrong and what to do."""


class FieldllmError(Exception):
    """An error the command line reports as one line and a non-zero exit code (no traceback)."""

    exit_code = 1


class InputError(FieldllmError):
    """The checkpoint or the options given are unusable."""

    exit_code = 2


class UnsupportedError(InputError):
    """The checkpoint uses something we do not support (architecture, tensor type, tokenizer)."""


class DiskSpaceError(FieldllmError):
    """Not enough free space where the package is written."""

    exit_code = 3


class PackageError(FieldllmError):
    """A model package is missing, damaged, or of a format version we do not read."""

    exit_code = 4
