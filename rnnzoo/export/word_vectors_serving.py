"""The SavedModel of word vectors: `embed` and `nearest` behind pinned signatures.

`WordVectorsModule` holds the vectors `E [V, D]` as one variable and the vocabulary as two hash
tables initialised from an asset file when the SavedModel loads (`serving.write_vocab_asset`:
web-safe base64 of each token's UTF-8 bytes, one per line), so it loads with plain
`tf.saved_model.load`, without rnnzoo.

Signatures (`contract.EMBED`, `contract.NEAREST`; `serving_default` is `embed`):

    embed(words: string [batch]) -> {"vectors": float32 [batch, D]}
        The row of each word. A word outside the vocabulary gets `<unk>`'s row; in a vocabulary
        without `<unk>` (a run with `drop_unknown`) it gets a zero vector.

    nearest(word: string [batch], k: int32 []) -> {"words": string [batch, k],
                                                   "similarities": float32 [batch, k]}
        The `k` words of largest cosine similarity to each query word, most similar first,
        never the query itself nor `<unk>`: what `rnnzoo.tasks.word2vec.nearest_words` lists.
        Cosines are those of the unit vectors `E[i] / max(|E[i]|, 1e-6)`
        (`tf.math.l2_normalize`; a zero row has similarity 0 to everything). `k` must be
        between 1 and `max_k` = V - 1, less one more when there is `<unk>` (every word but the
        query and `<unk>`); a query word outside the vocabulary is an error (it has no row).

The signatures declare their inputs with a dtype and an unknown shape and check the shapes
themselves (as `serving.GenerationModule` does): a wrong shape or value raises
InvalidArgumentError naming the argument; a wrong dtype is refused by the signature itself
(a TypeError or ValueError naming the expected `TensorSpec`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rnnzoo.export import contract
from rnnzoo.export.serving import _check, _checked_shapes


def nearest_max_k(vocab) -> int:
    """The largest `k` of `nearest`: every word but the query and `<unk>`."""
    return len(vocab) - 1 - (vocab.unk_id is not None)


class WordVectorsModule(tf.Module):
    """Word vectors behind the `embed` and `nearest` signatures (see the module docstring).

    Args:
        embeddings: float32 `[V, D]`, row `i` the vector of `vocab`'s token `i`.
        vocab: the `rnnzoo.data.vocab.Vocabulary` (a `WordVocabulary`) of the rows.
        vocab_asset: path of the vocabulary asset file (`serving.write_vocab_asset`).

    Example:
        module = WordVectorsModule(model.embeddings.numpy(), vocab, "vocab.tokens.b64")
        tf.saved_model.save(module, "saved_model", signatures=module.signatures())
        loaded = tf.saved_model.load("saved_model")
        loaded.embed(tf.constant(["king", "queen"]))["vectors"]          # [2, D]
        loaded.nearest(tf.constant(["king"]), tf.constant(5))["words"]   # [1, 5]
    """

    def __init__(self, embeddings, vocab, vocab_asset, name=None):
        super().__init__(name=name)
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(vocab):
            raise ValueError(f"`embeddings` must have shape [{len(vocab)}, D] (one row per "
                             f"token of the vocabulary), got {list(embeddings.shape)}")
        self._vocab_size, self._dim = embeddings.shape
        self._unk_id = vocab.unk_id
        self._max_k = nearest_max_k(vocab)
        self.embeddings = tf.Variable(embeddings, trainable=False, name="embeddings")
        lines = tf.lookup.TextFileIndex
        self._token_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_asset, tf.string, lines.WHOLE_LINE, tf.int64, lines.LINE_NUMBER,
                vocab_size=len(vocab)),
            default_value=-1)
        self._id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_asset, tf.int64, lines.LINE_NUMBER, tf.string, lines.WHOLE_LINE,
                vocab_size=len(vocab)),
            default_value="")
        self.embed = tf.function(self._embed, input_signature=[
            tf.TensorSpec(None, tf.string, name="words")])
        self.nearest = tf.function(self._nearest, input_signature=[
            tf.TensorSpec(None, tf.string, name="word"),
            tf.TensorSpec(None, tf.int32, name="k")])

    def signatures(self) -> dict:
        """The `signatures=` argument of `tf.saved_model.save`."""
        return {contract.EMBED: self.embed, contract.SERVING_DEFAULT: self.embed,
                contract.NEAREST: self.nearest}

    def _ids(self, words):
        """int64 ids of `words`; -1 for a word outside the vocabulary."""
        return self._token_to_id.lookup(tf.io.encode_base64(words))

    def _embed(self, words):
        (words,) = _checked_shapes(("words", words, [None], "a vector of words"))
        ids = self._ids(words)
        if self._unk_id is not None:
            ids = tf.where(ids < 0, tf.constant(self._unk_id, tf.int64), ids)
            return {"vectors": tf.gather(self.embeddings, ids)}
        vectors = tf.gather(self.embeddings, tf.maximum(ids, 0))
        return {"vectors": tf.where((ids >= 0)[:, None], vectors, tf.zeros_like(vectors))}

    def _nearest(self, word, k):
        word, k = _checked_shapes(("word", word, [None], "a vector of words"),
                                  ("k", k, [], "a scalar"))
        ids = self._ids(word)
        checks = [
            _check((k >= 1) & (k <= self._max_k),
                   f"`k` must be between 1 and {self._max_k} (the vocabulary's words other than "
                   f"the query{' and <unk>' if self._unk_id is not None else ''}), got {{}}", k),
            _check(tf.reduce_all(ids >= 0), "every `word` must be in the vocabulary, got {}",
                   tf.boolean_mask(word, ids < 0)),
        ]
        with tf.control_dependencies(checks):
            ids, k = tf.identity(ids), tf.identity(k)
        unit = tf.math.l2_normalize(self.embeddings, axis=1)  # [V, D]
        scores = tf.matmul(tf.gather(unit, ids), unit, transpose_b=True)  # [batch, V]
        excluded = tf.equal(tf.range(self._vocab_size, dtype=tf.int64)[None, :], ids[:, None])
        if self._unk_id is not None:
            excluded |= tf.equal(tf.range(self._vocab_size), self._unk_id)[None, :]
        scores = tf.where(excluded, tf.constant(-np.inf, tf.float32), scores)
        similarities, top = tf.math.top_k(scores, k)
        words = tf.io.decode_base64(self._id_to_token.lookup(tf.cast(top, tf.int64)))
        return {"words": words, "similarities": similarities}
