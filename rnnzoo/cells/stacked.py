"""A stack of cells that acts as one cell."""

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class StackedCells(keras.layers.StackedRNNCells):
    """Layers of cells run as one cell: layer `l`'s output at step `t` is layer `l+1`'s input.

    `keras.layers.StackedRNNCells` (so `keras.layers.RNN`, one-step calls and serialization
    work as for any Keras cell) plus the split step of the rnnzoo cells, which applies to the
    first layer only: the layers above see their inputs only inside the step.

        output_t, states_t = stack(X_t, states_{t-1})
        states_t = [states of layer 0, states of layer 1, ...]   # each layer's own, as its
                                                                 # `get_initial_state` makes

    Args:
      cells: A list of cells, bottom first. The first must be a `RecurrentCell` for
        `project_inputs` / `project_ids` / `step`; `call` takes any Keras cells.
      **kwargs: Passed to `keras.layers.Layer`.

    Call arguments:
      inputs: `[batch, input_dim]`, the first layer's input at one time step.
      states: One entry per layer: `[[H_0], [H_1, C_1], ...]`.
      training: Passed to the cells.

    Returns `(output of the top layer, new states, same structure)`.

    Example:

    ```python
    stack = StackedCells([LSTMCell(256) for _ in range(2)])
    y = keras.layers.RNN(stack, return_sequences=True)(x)  # x: [batch, time, features]
    ```
    """

    def project_inputs(self, x):
        """The first layer's `project_inputs`: `[..., input_dim] -> [..., G*units_0]`."""
        return self.cells[0].project_inputs(x)

    def project_ids(self, ids):
        """The first layer's `project_ids`: `[...] -> [..., G*units_0]`."""
        return self.cells[0].project_ids(ids)

    def step(self, projected_t, states):
        """`call` with the first layer's input already projected (`project_inputs(X_t)`)."""
        output, first = self.cells[0].step(projected_t, states[0])
        new_states = [first]
        for cell, cell_states in zip(self.cells[1:], states[1:], strict=True):
            output, cell_states = cell.call(output, cell_states)
            new_states.append(cell_states)
        return output, new_states
