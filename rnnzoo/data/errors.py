"""Errors raised by rnnzoo's data layer.

`CorpusError` is defined in `rnnzoo_datasets.errors` (the builders raise it and must not
import `rnnzoo`); it is re-exported here, the same class, for rnnzoo's callers.
"""

from rnnzoo_datasets.errors import CorpusError

__all__ = ["CorpusError"]
