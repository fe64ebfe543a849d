"""gsbnp's own exceptions: what a user can cause and fix, as opposed to a bug in gsbnp.

Every class subclasses the builtin exception that code (and tests) already catch, so
``except ValueError`` keeps working. The command line turns exactly these - and the file-system
``OSError`` it anticipates - into one ``gsbnp: error: ...`` line with exit code 2; any other
exception is a bug and keeps its traceback.

    GsbnpError                      base of all of them
    +- UsageError (ValueError)      a bad argument value: a range, a choice, a combination of options
    |  +- UsageTypeError (TypeError)   the wrong kind of object for an argument
    |  +- RunFolderError            an output folder that already holds another or an unfinished run
    +- DataError (ValueError)       a file whose content is not what gsbnp expects (dataset, npz)
    |  +- CheckpointError           a checkpoint that is not one, is foreign, or holds NaN/inf
    +- TrainingError (RuntimeError) training cannot go on (a non-finite loss, a resume mismatch)
    +- WriteError (OSError)         a file could not be written; the previous file is unchanged
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DataError",
    "GsbnpError",
    "RunFolderError",
    "TrainingError",
    "UsageError",
    "UsageTypeError",
    "WriteError",
]


class GsbnpError(Exception):
    """Base class: a problem with the input, the data or the environment that the user can fix."""


class UsageError(GsbnpError, ValueError):
    """An argument has a bad value (out of range, not one of the choices, conflicting options)."""


class UsageTypeError(UsageError, TypeError):
    """An argument has the wrong type (also a ``TypeError``, as Python's own argument checks raise)."""


class RunFolderError(UsageError):
    """The output folder holds another run, an unfinished run, or a run with other settings."""


class DataError(GsbnpError, ValueError):
    """A file's content is not what was expected: not an ``.npz``, a missing key, a wrong dtype..."""


class CheckpointError(DataError):
    """A checkpoint that is not a gsbnp checkpoint, another version, or holds non-finite values."""


class TrainingError(GsbnpError, RuntimeError):
    """Training cannot go on (non-finite loss, a checkpoint written with other settings)."""


class WriteError(GsbnpError, OSError):
    """Writing a file failed (disk full, read-only, permission); the previous file, if any, is kept.

    ``errno`` and ``filename`` are those of the underlying ``OSError``; ``str()`` is one line saying
    which file, why, and that the previous version is unchanged.
    """

    def __init__(self, path: str, err: OSError):
        why = err.strerror or str(err) or type(err).__name__
        super().__init__(err.errno, f"could not write {path}: {why} (any previous {path} is unchanged)")
        self.filename = path

    def __str__(self) -> str:
        return self.strerror
