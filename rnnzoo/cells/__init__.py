"""Recurrent cells, one time step each, following the Keras cell contract.

Every cell also splits its step for fast time loops: `project_inputs` (or `project_ids`) for the
input half of the gates, over all time steps at once, and `step` for the recurrent half.
"""

from rnnzoo.cells.base import RecurrentCell
from rnnzoo.cells.factory import CELLS, make_cell
from rnnzoo.cells.gru import GRUCell
from rnnzoo.cells.lstm import LSTMCell
from rnnzoo.cells.simple_rnn import SimpleRNNCell
from rnnzoo.cells.stacked import StackedCells

__all__ = [
    "CELLS",
    "GRUCell",
    "LSTMCell",
    "RecurrentCell",
    "SimpleRNNCell",
    "StackedCells",
    "make_cell",
]
