"""Errors accord raises at its boundaries.

Every error a user can cause is an :class:`InputError`: the CLI maps it to exit
code 2 and the flow fails before any training starts. Messages say what was
wrong, where, what was expected, what was found and how to fix it.
"""

from __future__ import annotations


class AccordError(Exception):
    """Base class of every error accord raises on purpose."""


class InputError(AccordError, ValueError):
    """Bad input from the user: a parameter, a data source, a column, a reference."""


class ConfigError(InputError):
    """A configuration value or member parameter is invalid."""


class DataError(InputError):
    """A data source cannot be read, or its content cannot be trained on."""


class SchemaError(InputError):
    """A table does not match the schema a model was trained on."""


class ModelReferenceError(InputError):
    """A model reference or name is malformed or points outside its store."""


class NotFoundError(InputError, LookupError):
    """A model, version or file does not exist in the store."""


class InUseError(InputError):
    """A registry change refused because something points at what it would remove (an alias)."""


class IntegrityError(AccordError):
    """A published file failed verification: checksum, size, format or type list."""


class PublishError(AccordError):
    """A version could not be published; nothing of it is visible to readers."""
