"""Make a cell by the name of its family."""

from rnnzoo.cells.gru import GRUCell
from rnnzoo.cells.lstm import LSTMCell
from rnnzoo.cells.simple_rnn import SimpleRNNCell

CELLS = {"rnn": SimpleRNNCell, "gru": GRUCell, "lstm": LSTMCell}


def make_cell(kind, units, **kwargs):
    """A new cell of the family `kind`: `"rnn"`, `"gru"` or `"lstm"`.

    Args:
      kind: The key of the family in `CELLS`.
      units: Positive integer, the size of the hidden state.
      **kwargs: Passed to the cell's constructor (`seed`, `reset_after`, `forget_bias`, ...).

    Raises:
      ValueError: `kind` is not one of the keys of `CELLS`.
    """
    if kind not in CELLS:
        raise ValueError(f"`kind` must be one of {', '.join(map(repr, CELLS))}; got {kind!r}")
    return CELLS[kind](units, **kwargs)
