"""accord's version, written once: the package metadata, provenance and ``--version`` read it here."""

__version__ = "0.4.0"
