"""Errors raised by rnnzoo's corpus builders (and re-exported by `rnnzoo.data.errors`).

Defined here, below `rnnzoo`, so that `rnnzoo_datasets` never imports `rnnzoo`:
`rnnzoo.data.corpora` imports the builders, not the other way round.
"""


class CorpusError(ValueError):
    """A corpus could not be found, verified, read or named.

    Raised for a missing source file, a file whose size or sha256 differs from the
    expected one, a truncated or corrupt zip archive, text that is not UTF-8, and an
    unknown corpus, config or split name. The message names the file (or the name)
    and says what is wrong, with the expected and the actual value where there are
    two to compare.
    """
