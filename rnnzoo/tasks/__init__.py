"""Tasks of the zoo: each wires one kind of model (its config, data, model, loss, evaluation,
reports and export) to the shared training loop and export machinery. See `rnnzoo.zoo`."""
