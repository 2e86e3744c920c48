"""Models of the zoo: embedding/one-hot + recurrent layers + head, returning logits."""

from rnnzoo.models.char_lm import IMPLS, MODELS, CharLM


def char_lm_from_config(config, vocab_size: int) -> CharLM:
    """Builds the `CharLM` a `rnnzoo.config.TrainConfig` describes."""
    return CharLM(vocab_size, cell=config.model, num_layers=config.num_layers,
                  units=config.num_hiddens, embedding_dim=config.embedding_dim,
                  impl=config.impl, init=config.init, forget_bias=config.forget_bias,
                  reset_after=config.reset_after, seed=config.seed)


__all__ = ["CharLM", "IMPLS", "MODELS", "char_lm_from_config"]
