"""The errors whose message is meant for the user: a bad option, file, folder or checkpoint.

Every one of them subclasses `UserError`, so an entry point reports them all the same way
(`uir.common.cli`: one line, no traceback). The extra bases keep what callers may catch:
a missing folder is also a FileNotFoundError, a bad value also a ValueError.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message names the option, file or folder and what is valid."""


class OptionsError(UserError, ValueError):
    """An options file, override or flag is invalid."""


class DataError(UserError, ValueError):
    """A test or training set cannot be read: bad folder, unpaired images, unreadable file."""


class DatarootNotFoundError(DataError, FileNotFoundError):
    """An LQ or GT folder named by an option does not exist."""


class CheckpointError(UserError):
    """A checkpoint file cannot be used (unreadable, not a state dict, not finite)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path an option points at does not exist."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A state dict's keys or shapes do not fit the network it is loaded into."""


class RunFolderError(UserError, ValueError):
    """A run folder cannot be used as asked (would overwrite, cannot resume, cannot be written)."""


class ExperimentError(UserError, RuntimeError):
    """A training experiment folder cannot be created or resumed as asked."""


class ImageInputError(UserError, ValueError):
    """An image given to the Python API cannot be read unambiguously (its dtype, range or shape)."""


class WeightsFileError(UserError, ValueError):
    """A metric's weights file that an option names, or that the torch hub cache holds, cannot be
    used (missing weights that were never named are no error: the metric's column stays empty)."""
