"""Models of the zoo: embedding/one-hot + recurrent layers + head, returning logits."""

from rnnzoo.models.char_lm import CELLS, IMPLS, INITS, INPUTS, CharLM

__all__ = ["CELLS", "CharLM", "IMPLS", "INITS", "INPUTS"]
