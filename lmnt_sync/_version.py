"""The package's version: one string, read by setup.cfg (``attr:``) without importing the package.

It imports nothing, so any module of lmnt_sync can import it without a cycle.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
