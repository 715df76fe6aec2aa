"""Errors a user can cause. The CLI prints them as one sentence and exits non-zero; anything else is a bug."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a missing file, a bad argument, unusable weights."""


class UnknownVersionError(UserError, ValueError):
    """A version name that the registry does not know or that was not built."""


class WeightsError(UserError):
    """A weights directory that is missing, incomplete or corrupt; the message names the tensor."""


class ImageError(UserError):
    """An image that does not exist or cannot be decoded."""


class PreprocessError(UserError, ValueError):
    """Preprocessing parameters that cannot work (a crop larger than the resize, a size that is not a number)."""


class InputError(UserError, ValueError):
    """An array that is not an input the network takes (shape, dtype, an empty batch)."""
