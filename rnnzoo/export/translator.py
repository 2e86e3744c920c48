"""Serving modules of a trained `Seq2Seq`: a translator behind pinned signatures, and its TFLite.

`TranslatorModule` is what the SavedModel holds; it loads with plain `tf.saved_model.load`
(the vocabulary is an asset read into two hash tables, `serving.write_vocab_asset`):

    translate(text: string [batch]) -> {"translation": string [batch]}     (= serving_default)
        Greedy search, the whole decode loop in the graph. The text is normalised as training
        spans were (runs of whitespace become one space, none at the ends); a character
        outside the vocabulary is read as `<unk>` and an `<unk>` output shows as U+FFFD.
        Empty text (or only whitespace), or text longer than `max_source_length` characters,
        is an InvalidArgumentError naming the row and the limit.
    translate_beam(text: string [batch], beam_width: int32 []) -> {"translation": string
        [batch], "score": float32 [batch]}
        Beam search (`Seq2Seq.beam_search_decode`), `1 <= beam_width <= MAX_BEAM_WIDTH`;
        `score` is the translation's total log-probability (its `<eos>` included).
    encode(source_ids: int32 [batch, S]) -> {"state": float32 [batch, state_size],
                                             "memory": float32 [batch, S, H],
                                             "memory_mask": float32 [batch, S]}
        Ids padded at the end with `<pad>` = 0 (already reversed if the model reads its source
        reversed: `model.json`'s `reverse_source`); `1 <= S <= max_source_length`.
    decode_step(token_ids: int32 [batch], state, memory, memory_mask) -> {"logits": float32
        [batch, V], "state": float32 [batch, state_size]}
        One decoder step: feed `<bos>` first, then each chosen id, until `<eos>`.

The state is the decoder's flat state list packed into one tensor, layer by layer, `h` then
`c` (`contract.state_layout("lstm", num_layers, H)`); `memory_mask` is 1.0 at real source
positions and 0.0 at padding.

`TFLiteTranslatorModule` has `encode` and `decode_step` at batch 1, the source padded to
exactly `max_source_length` (the encoder's loop unrolls over it, so the file needs no while
loop or TensorList ops; padding is masked, so the result is the unpadded source's), free of
string tables: what the TFLite converter sees.
"""

from __future__ import annotations

import tensorflow as tf

from rnnzoo.data.seq2seq import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_CHAR, UNK_ID
from rnnzoo.export import contract
from rnnzoo.export.serving import _check, _checked_shapes, pack_state, unpack_state

TRANSLATE = "translate"
TRANSLATE_BEAM = "translate_beam"
ENCODE = "encode"
DECODE_STEP = "decode_step"
SIGNATURES = (TRANSLATE, contract.SERVING_DEFAULT, TRANSLATE_BEAM, ENCODE, DECODE_STEP)
TFLITE_SIGNATURES = (DECODE_STEP, ENCODE)  # as the converter lists them (sorted)
MAX_BEAM_WIDTH = 64


def _state_sizes(model) -> list[int]:
    return [model.num_hiddens] * (2 * model.num_layers)


def encode_packed(model, source_ids):
    """`model.encode` with the state packed and the mask as float32."""
    memory, mask, states = model.encode(source_ids)
    return {"state": pack_state(states), "memory": memory,
            "memory_mask": tf.cast(mask, tf.float32)}


def decode_step_packed(model, token_ids, state, memory, memory_mask):
    """`model.decode_step` on a packed state and a float32 mask."""
    logits, states = model.decode_step(token_ids, unpack_state(state, _state_sizes(model)),
                                       memory, memory_mask > 0.5)
    return {"logits": logits, "state": pack_state(states)}


class TranslatorModule(tf.Module):
    """The SavedModel's signatures (module docstring).

    Args:
        model: a trained `Seq2Seq`.
        vocab: its `Seq2SeqVocabulary`.
        vocab_asset: path of the vocabulary asset file (`serving.write_vocab_asset`).
        reverse_source: the model reads its source reversed.
        max_source_length: the longest text accepted (characters).
        max_output_length: the most tokens a translation decodes, `<eos>` included.
    """

    def __init__(self, model, vocab, vocab_asset, *, reverse_source: bool,
                 max_source_length: int, max_output_length: int, name=None):
        super().__init__(name=name)
        self.model = model
        self.reverse_source = reverse_source
        self.max_source_length = max_source_length
        self.max_output_length = max_output_length
        lines = tf.lookup.TextFileIndex
        self._char_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(vocab_asset, tf.string, lines.WHOLE_LINE, tf.int64,
                                          lines.LINE_NUMBER, vocab_size=len(vocab)),
            default_value=UNK_ID)
        self._id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(vocab_asset, tf.int64, lines.LINE_NUMBER, tf.string,
                                          lines.WHOLE_LINE, vocab_size=len(vocab)),
            default_value="")
        state_size = sum(_state_sizes(model))
        H = model.num_hiddens
        self.translate = tf.function(self._translate, input_signature=[
            tf.TensorSpec(None, tf.string, name="text")])
        self.translate_beam = tf.function(self._translate_beam, input_signature=[
            tf.TensorSpec(None, tf.string, name="text"),
            tf.TensorSpec(None, tf.int32, name="beam_width")])
        self.encode = tf.function(self._encode, input_signature=[
            tf.TensorSpec(None, tf.int32, name="source_ids")])
        self.decode_step = tf.function(self._decode_step, input_signature=[
            tf.TensorSpec([None], tf.int32, name="token_ids"),
            tf.TensorSpec([None, state_size], tf.float32, name="state"),
            tf.TensorSpec([None, None, H], tf.float32, name="memory"),
            tf.TensorSpec([None, None], tf.float32, name="memory_mask")])

    def signatures(self) -> dict:
        """The `signatures=` argument of `tf.saved_model.save`."""
        return {TRANSLATE: self.translate, contract.SERVING_DEFAULT: self.translate,
                TRANSLATE_BEAM: self.translate_beam, ENCODE: self.encode,
                DECODE_STEP: self.decode_step}

    # ------------------------------------------------------------------------ text <-> ids

    def _source_ids(self, text):
        """string `[batch]` -> int32 `[batch, S]`, normalised, checked, reversed if needed."""
        (text,) = _checked_shapes(("text", text, [None], "a vector of strings"))
        text = tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))
        chars = tf.strings.unicode_split(text, "UTF-8", errors="replace")
        lengths = tf.cast(chars.row_lengths(), tf.int32)
        checks = [
            _check(tf.reduce_all(lengths > 0), "every `text` must hold a non-space character, "
                   "got an empty one at row(s) {}", tf.where(tf.equal(lengths, 0))[:, 0]),
            _check(tf.reduce_all(lengths <= self.max_source_length),
                   f"`text` must be at most {self.max_source_length} characters long (the "
                   f"model's max_source_length), got lengths {{}}", lengths),
        ]
        with tf.control_dependencies(checks):
            ids = tf.cast(self._char_to_id.lookup(tf.io.encode_base64(chars)), tf.int32)
        ids = ids.to_tensor(PAD_ID)
        if self.reverse_source:
            ids = tf.reverse_sequence(ids, lengths, seq_axis=1, batch_axis=0)
        return ids

    def _text(self, ids):
        """int32 `[batch, L]` -> string `[batch]`: tokens up to the first `<eos>`, `<unk>` as
        U+FFFD, other specials left out."""
        ids = tf.cast(ids, tf.int64)
        before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1), 0)
        tokens = tf.io.decode_base64(self._id_to_token.lookup(ids))
        tokens = tf.where(tf.equal(ids, UNK_ID), UNK_CHAR, tokens)
        keep = before_eos & ((ids >= len(SPECIAL_TOKENS)) | tf.equal(ids, UNK_ID))
        return tf.strings.reduce_join(tf.where(keep, tokens, ""), axis=1)

    # ------------------------------------------------------------------------ signatures

    def _translate(self, text):
        ids = self.model.greedy_decode(self._source_ids(text), self.max_output_length,
                                       BOS_ID, EOS_ID)
        return {"translation": self._text(ids)}

    def _translate_beam(self, text, beam_width):
        (beam_width,) = _checked_shapes(("beam_width", beam_width, [], "a scalar"))
        check = _check((beam_width >= 1) & (beam_width <= MAX_BEAM_WIDTH),
                       f"`beam_width` must be between 1 and {MAX_BEAM_WIDTH}, got {{}}",
                       beam_width)
        with tf.control_dependencies([check]):
            beam_width = tf.identity(beam_width)
        ids, scores = self.model.beam_search_decode(
            self._source_ids(text), self.max_output_length, BOS_ID, EOS_ID, beam_width)
        return {"translation": self._text(ids), "score": scores}

    def _encode(self, source_ids):
        rank = _check(tf.equal(tf.rank(source_ids), 2), "`source_ids` must have shape "
                      "[batch, length] (a matrix of ids), got shape {}", tf.shape(source_ids))
        with tf.control_dependencies([rank]):
            shape = tf.shape(source_ids)
            source_ids = tf.reshape(source_ids, [shape[0], shape[-1]])
        vocab_size, n = self.model.vocab_size, tf.shape(source_ids)[1]
        checks = [
            _check(tf.reduce_all((source_ids >= 0) & (source_ids < vocab_size)),
                   f"`source_ids` must be in [0, {vocab_size}), got {{}}",
                   tf.boolean_mask(source_ids, (source_ids < 0) | (source_ids >= vocab_size))),
            _check((n >= 1) & (n <= self.max_source_length),
                   f"`source_ids` must have 1 to {self.max_source_length} columns, got {{}}", n),
        ]
        with tf.control_dependencies(checks):
            source_ids = tf.identity(source_ids)
        return encode_packed(self.model, source_ids)

    def _decode_step(self, token_ids, state, memory, memory_mask):
        vocab_size = self.model.vocab_size
        check = _check(tf.reduce_all((token_ids >= 0) & (token_ids < vocab_size)),
                       f"`token_ids` must be in [0, {vocab_size}), got {{}}", token_ids)
        with tf.control_dependencies([check]):
            token_ids = tf.identity(token_ids)
        return decode_step_packed(self.model, token_ids, state, memory, memory_mask)


class TFLiteTranslatorModule(tf.Module):
    """`encode` and `decode_step` at batch 1, the source padded to `max_source_length`: what
    `model.tflite` is converted from (module docstring)."""

    def __init__(self, model, max_source_length: int, name=None):
        super().__init__(name=name)
        self.model = model
        S, H = max_source_length, model.num_hiddens
        state_size = sum(_state_sizes(model))
        self.encode = tf.function(lambda source_ids: encode_packed(model, source_ids),
                                  input_signature=[tf.TensorSpec([1, S], tf.int32,
                                                                 name="source_ids")])
        self.decode_step = tf.function(
            lambda token_ids, state, memory, memory_mask: decode_step_packed(
                model, token_ids, state, memory, memory_mask),
            input_signature=[tf.TensorSpec([1], tf.int32, name="token_ids"),
                             tf.TensorSpec([1, state_size], tf.float32, name="state"),
                             tf.TensorSpec([1, S, H], tf.float32, name="memory"),
                             tf.TensorSpec([1, S], tf.float32, name="memory_mask")])

    def signatures(self) -> dict:
        return {ENCODE: self.encode, DECODE_STEP: self.decode_step}
