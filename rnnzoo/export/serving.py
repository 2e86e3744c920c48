"""Serving modules: a trained `CharLM` behind pinned input signatures (Model Garden `ExportModule`).

`GenerationModule` is what the SavedModel holds (`generate`, `step`, `initial_state`, see
`rnnzoo.export.contract` and the README); `TFLiteStepModule` is the batch-1 `step` alone, free of
string tables and checks, which is what the TFLite converter sees. Both run the model's one-step
function (`CharLM.step`, the cells themselves), never a `keras.layers.RNN` loop, whose TensorList
ops TFLite's builtin op set lacks.

The state is packed: one float32 `[batch, state_size]` tensor (`contract.state_layout`).
"""

from __future__ import annotations

import pathlib
import tempfile

import tensorflow as tf

from rnnzoo.export import contract
from rnnzoo.models.generation import choose_next, forbid_token


def pack_state(states) -> tf.Tensor:
    """Flat list of `[batch, units]` tensors -> one `[batch, state_size]` tensor."""
    return tf.concat(list(states), axis=1)


def unpack_state(state, state_sizes) -> list[tf.Tensor]:
    """One `[batch, state_size]` tensor -> the model's flat list of `[batch, units]` tensors."""
    return tf.split(state, state_sizes, axis=1)


def packed_step(model, token_ids, state):
    """`model.step` on a packed state: int32 `[batch]`, `[batch, S]` -> `(logits, state)`."""
    logits, states = model.step(token_ids, unpack_state(state, model.state_sizes))
    return logits, pack_state(states)


class TFLiteStepModule(tf.Module):
    """The `step` signature at batch 1, and nothing else: what `model.tflite` is converted from.

    Args:
        model: a `CharLM`.

    Signature `step`: `token_ids` int32 `[1]`, `state` float32 `[1, state_size]` ->
    `{"logits": float32 [1, vocab_size], "state": float32 [1, state_size]}`.
    """

    def __init__(self, model, name=None):
        super().__init__(name=name)
        self.model = model
        state_size = sum(model.state_sizes)
        self.step = tf.function(self._step, input_signature=[
            tf.TensorSpec([1], tf.int32, name="token_ids"),
            tf.TensorSpec([1, state_size], tf.float32, name="state"),
        ])

    def _step(self, token_ids, state):
        logits, state = packed_step(self.model, token_ids, state)
        return {"logits": logits, "state": state}


class GenerationModule(tf.Module):
    """The SavedModel's signatures: text in, text out, plus the step loop's two functions.

    The vocabulary is not baked into the graph: two hash tables are initialised, when the
    SavedModel loads, from the asset file `vocab_asset` (`contract.VOCAB_ASSET` format).

    Args:
        model: a `CharLM`.
        vocab: the `rnnzoo.data.vocab.Vocabulary` the model was trained with.
        vocab_asset: path of the vocabulary asset file (`write_vocab_asset`).

    Signatures (shapes with a leading `batch`, which must be >= 1):
        generate(prefix: string [batch], num_chars: int32 [], temperature: float32 [],
                 seed: int32 []) -> {"text": string [batch]}
        step(token_ids: int32 [batch], state: float32 [batch, S])
            -> {"logits": float32 [batch, vocab_size], "state": float32 [batch, S]}
        initial_state(batch_size: int32 []) -> {"state": float32 [batch_size, S]} (zeros)

    `generate` chooses as `rnnzoo.models.generation.TextGenerator` does (`choose_next`, seed
    `[seed, t]` at step `t`, `<unk>` never chosen); prefix characters outside the vocabulary
    read as `<unk>`; a prefix that is not valid UTF-8 is an error.

    The signatures declare every input with its dtype and an unknown shape (`TensorSpec(None)`)
    and check the shapes above themselves: a loaded signature does not enforce a pinned shape,
    so another shape ran into a graph traced for the pinned one and failed deep inside it, in
    TensorFlow's words (a state of the wrong width at `tf.split`).
    Bad arguments raise InvalidArgumentError with a message naming the argument and the value
    (for a shape: the expected shape and the given one); the shape checks run first, then the
    value checks, and both before anything is allocated.
    """

    def __init__(self, model, vocab, vocab_asset, name=None):
        super().__init__(name=name)
        if len(vocab) != model.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} tokens but the model's vocab_size "
                             f"is {model.vocab_size}")
        self.model = model
        self._vocab_size = len(vocab)
        self._state_size = sum(model.state_sizes)
        self._unk_id = vocab.unk_id
        self._has_unk = vocab.unk_id is not None
        lines = tf.lookup.TextFileIndex
        self._token_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_asset, tf.string, lines.WHOLE_LINE, tf.int64, lines.LINE_NUMBER,
                vocab_size=len(vocab)),
            default_value=vocab.unk_id if self._has_unk else -1)
        self._id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_asset, tf.int64, lines.LINE_NUMBER, tf.string, lines.WHOLE_LINE,
                vocab_size=len(vocab)),
            default_value="")
        # Shapes are checked inside (`_checked_shapes`), so the signatures pin the dtypes only.
        self.generate = tf.function(self._generate, input_signature=[
            tf.TensorSpec(None, tf.string, name="prefix"),
            tf.TensorSpec(None, tf.int32, name="num_chars"),
            tf.TensorSpec(None, tf.float32, name="temperature"),
            tf.TensorSpec(None, tf.int32, name="seed"),
        ])
        self.step = tf.function(self._step, input_signature=[
            tf.TensorSpec(None, tf.int32, name="token_ids"),
            tf.TensorSpec(None, tf.float32, name="state"),
        ])
        self.initial_state = tf.function(self._initial_state, input_signature=[
            tf.TensorSpec(None, tf.int32, name="batch_size"),
        ])

    def signatures(self) -> dict:
        """The `signatures=` argument of `tf.saved_model.save`."""
        return {contract.GENERATE: self.generate, contract.SERVING_DEFAULT: self.generate,
                contract.STEP: self.step, contract.INITIAL_STATE: self.initial_state}

    # --------------------------------------------------------------------------- generate

    def _generate(self, prefix, num_chars, temperature, seed):
        prefix, num_chars, temperature, seed = _checked_shapes(
            ("prefix", prefix, [None], "a vector of strings"),
            ("num_chars", num_chars, [], "a scalar"),
            ("temperature", temperature, [], "a scalar"),
            ("seed", seed, [], "a scalar"))
        batch = tf.size(prefix)
        # Valid UTF-8 decodes and encodes back to the same bytes; invalid bytes come back as
        # U+FFFD. A prefix that holds U+FFFD itself round-trips unchanged.
        codepoints = tf.strings.unicode_decode(prefix, "UTF-8", errors="replace",
                                               replacement_char=0xFFFD)
        valid_utf8 = tf.equal(tf.strings.unicode_encode(codepoints, "UTF-8"), prefix)
        checks = [
            _check(batch > 0, "`prefix` must hold at least one string, got an empty batch"),
            _check(tf.reduce_all(tf.strings.length(prefix) > 0),
                   "every `prefix` must be a non-empty string, got an empty one"),
            _check((num_chars >= 0) & (num_chars <= contract.MAX_NUM_CHARS),
                   f"`num_chars` must be between 0 and {contract.MAX_NUM_CHARS}, got {{}}",
                   num_chars),
            _check(tf.math.is_finite(temperature) & (temperature >= 0.0),
                   "`temperature` must be a finite number >= 0 (0 means greedy), got {}",
                   temperature),
            _check(tf.reduce_all(valid_utf8),
                   "every `prefix` must be valid UTF-8 text, got invalid bytes in the prefix(es) "
                   "at batch index {}", tf.where(~valid_utf8)[:, 0]),
        ]
        with tf.control_dependencies(checks):
            prefix, num_chars = tf.identity(prefix), tf.identity(num_chars)

        # Teacher-forced ids: [batch, longest prefix], each row padded after its own length.
        chars = tf.strings.unicode_split(prefix, "UTF-8", errors="strict")
        ids = tf.ragged.map_flat_values(
            lambda c: tf.cast(self._token_to_id.lookup(tf.io.encode_base64(c)), tf.int32), chars)
        if not self._has_unk:
            with tf.control_dependencies([_check(
                    tf.reduce_all(ids.flat_values >= 0),
                    "`prefix` holds characters that are not in the vocabulary, which has no "
                    "unknown token")]):
                ids = tf.identity(ids)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        forced_ids = ids.to_tensor(default_value=0)
        longest = tf.shape(forced_ids)[1]

        # d2l's predict_rnn, every row at once: row i reads its own prefix for lengths[i] steps,
        # then its own choices; its output starts with the choice made at step lengths[i] - 1.
        # Choices are `TextGenerator`'s: `choose_next` with the stateless seed [seed, t], and the
        # unknown token masked out.
        num_steps = tf.maximum(longest - 1 + num_chars, 1)

        def body(t, previous, state, chosen):
            teacher = forced_ids[:, tf.minimum(t, longest - 1)]
            token_ids = tf.where(t < lengths, teacher, previous)
            logits, state = packed_step(self.model, token_ids, state)
            logits = forbid_token(logits, self._unk_id)  # <unk> is never generated
            choice = choose_next(logits, temperature, 0, tf.stack([seed, t]))
            return t + 1, choice, state, chosen.write(t, choice)

        _, _, _, chosen = tf.while_loop(
            lambda t, *_: t < num_steps, body,
            (tf.constant(0), tf.zeros([batch], tf.int32), tf.zeros([batch, self._state_size]),
             tf.TensorArray(tf.int32, size=num_steps, element_shape=[None])))
        chosen = tf.transpose(chosen.stack())  # [batch, num_steps]
        positions = lengths[:, None] - 1 + tf.range(num_chars)[None, :]
        generated = tf.gather(chosen, positions, batch_dims=1)  # [batch, num_chars]
        tokens = tf.io.decode_base64(self._id_to_token.lookup(tf.cast(generated, tf.int64)))
        return {"text": prefix + tf.strings.reduce_join(tokens, axis=1)}

    # ------------------------------------------------------------------------ step loop

    def _step(self, token_ids, state):
        token_ids, state = _checked_shapes(
            ("token_ids", token_ids, [None], "a vector of ids"),
            ("state", state, [None, self._state_size], "a batch of packed states"))
        batch = tf.shape(token_ids)[0]
        checks = [
            _check(batch > 0, "`token_ids` must hold at least one id, got an empty batch"),
            _check(tf.equal(batch, tf.shape(state)[0]),
                   "`token_ids` and `state` must have the same batch size, got {} and {}",
                   batch, tf.shape(state)[0]),
            _check(tf.reduce_all((token_ids >= 0) & (token_ids < self._vocab_size)),
                   f"`token_ids` must be in [0, {self._vocab_size}), got {{}}", token_ids),
        ]
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        logits, state = packed_step(self.model, token_ids, state)
        return {"logits": logits, "state": state}

    def _initial_state(self, batch_size):
        (batch_size,) = _checked_shapes(("batch_size", batch_size, [], "a scalar"))
        with tf.control_dependencies([_check(
                (batch_size >= 1) & (batch_size <= contract.MAX_BATCH_SIZE),
                f"`batch_size` must be between 1 and {contract.MAX_BATCH_SIZE}, got {{}}",
                batch_size)]):
            batch_size = tf.identity(batch_size)
        return {"state": tf.zeros([batch_size, self._state_size])}


def _check(condition, template, *values):
    """`tf.debugging.Assert` whose message is `template` with `{}` filled by `values`."""
    message = tf.strings.format(template, values) if values else template
    return tf.debugging.Assert(condition, [message])


def _checked_shapes(*specs):
    """Checks each `(name, tensor, shape, what)` has `shape` (`None`: any size, a batch).

    Returns the tensors, to be used instead of the given ones: they run only after every check
    passed, and carry the checked shape statically. A wrong shape raises InvalidArgumentError
    "`name` must have shape [batch, 48] (what), got shape [1, 5]".

    The static shape comes from a `tf.reshape` (a no-op once the check passed), not from
    `tf.ensure_shape` or `set_shape`: Grappler's shape inference carries a shape that those give
    a tensor back to its `tf.identity` input, folds the check into "always true" and drops it,
    and the wrong shape then fails later in TensorFlow's own words. A reshape's output shape
    says nothing about its input's.
    """
    checks = []
    for name, tensor, shape, what in specs:
        actual = tf.shape(tensor)
        want = tf.constant([-1 if d is None else d for d in shape], tf.int32)
        # `actual` padded or cut to len(shape), so the comparison is defined for any rank.
        padded = tf.pad(actual, [[0, tf.maximum(0, len(shape) - tf.size(actual))]])[:len(shape)]
        ok = tf.equal(tf.size(actual), len(shape)) & tf.reduce_all((want < 0) | (padded == want))
        expected = "[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]"
        given = tf.strings.join(["[", tf.strings.reduce_join(tf.strings.as_string(actual),
                                                             separator=", "), "]"])
        checks.append(tf.debugging.Assert(ok, [tf.strings.join([
            f"`{name}` must have shape {expected} ({what}), got shape ", given])]))
    with tf.control_dependencies(checks):
        return tuple(tf.reshape(tf.identity(tensor), [-1 if d is None else d for d in shape])
                     for _, tensor, shape, _ in specs)


def write_vocab_asset(vocab, path) -> None:
    """Writes the vocabulary asset: one token per line, web-safe base64 of its UTF-8 bytes."""
    encoded = tf.io.encode_base64([t.encode("utf-8") for t in vocab.tokens]).numpy()
    with open(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line in encoded))


def save_with_vocab_asset(make_module, vocab, saved_model_dir, *, scratch_dir=None) -> None:
    """`tf.saved_model.save` of `make_module(vocab_asset_path)`, with its `signatures()`.

    The vocabulary asset is written to a scratch directory (`scratch_dir`, default the system's
    temporary one) that is removed afterwards: `tf.saved_model.save` copies it into `assets/`.
    """
    with tempfile.TemporaryDirectory(prefix="rnnzoo-vocab-", dir=scratch_dir) as scratch:
        asset = pathlib.Path(scratch, contract.VOCAB_ASSET)
        write_vocab_asset(vocab, asset)
        module = make_module(str(asset))
        tf.saved_model.save(module, str(saved_model_dir), signatures=module.signatures())
