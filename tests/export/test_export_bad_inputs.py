"""Bad requests get clear errors from the exported artifacts themselves and from the CLI."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from rnnzoo import generate
from rnnzoo.export.metadata import ExportMetadata
from rnnzoo.export.runtime import TFLiteStepModel

GOOD = dict(prefix=["分开"], num_chars=5, temperature=0.0, seed=0)
DTYPES = {"prefix": tf.string, "num_chars": tf.int32, "temperature": tf.float32,
          "seed": tf.int32}

BAD_GENERATE = {
    "huge_num_chars": (dict(num_chars=2**31 - 1), "`num_chars` must be between 0 and 10000, "
                                                  "got 2147483647"),
    "num_chars_past_max": (dict(num_chars=10_001), "`num_chars` must be between 0 and 10000"),
    "negative_num_chars": (dict(num_chars=-1), "`num_chars` must be between 0 and 10000, got -1"),
    "negative_temperature": (dict(temperature=-0.5), "`temperature` must be a finite number >= 0"),
    "nan_temperature": (dict(temperature=float("nan")), "`temperature` must be a finite number"),
    "empty_batch": (dict(prefix=[]), "`prefix` must hold at least one string, got an empty batch"),
    "empty_prefix": (dict(prefix=["分开", ""]), "every `prefix` must be a non-empty string"),
}


@pytest.fixture(scope="module")
def saved(exports):
    return exports.get("lstm").loaded()


@pytest.mark.parametrize("case", sorted(BAD_GENERATE))
def test_generate_signature_rejects(saved, case):
    change, message = BAD_GENERATE[case]
    args = {k: tf.constant(v, DTYPES[k]) for k, v in {**GOOD, **change}.items()}
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        saved.signatures["generate"](**args)
    assert message in info.value.message
    assert generate.assertion_message(info.value.message).startswith(message)


def test_max_num_chars_is_allowed(saved):
    out = saved.signatures["generate"](prefix=tf.constant(["分"]), num_chars=tf.constant(10_000),
                                       temperature=tf.constant(0.0), seed=tf.constant(0))
    assert len(out["text"].numpy()[0].decode()) == 1 + 10_000


def test_step_signature_rejects(saved):
    state = saved.signatures["initial_state"](batch_size=tf.constant(2))["state"]
    step = saved.signatures["step"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`token_ids` must be in \[0, "):
        step(token_ids=tf.constant([1, 10_000]), state=state)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`token_ids` must be in \[0, "):
        step(token_ids=tf.constant([-1, 0]), state=state)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, got 1 and 2"):
        step(token_ids=tf.constant([1]), state=state)
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        step(token_ids=tf.zeros([0], tf.int32), state=state[:0])


@pytest.mark.parametrize("batch_size", [0, -3, 2**31 - 1])
def test_initial_state_signature_rejects(saved, batch_size):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"`batch_size` must be between 1 and 65536, got {batch_size}"):
        saved.signatures["initial_state"](batch_size=tf.constant(batch_size))


# Issue 13, item 9: a wrong shape got TensorFlow's own message (from deep inside the graph, or
# none at all). Each must name the argument, the shape it must have and the shape it has.
# name -> (signature, {argument: value}, message parts); S: the state size of the entry.
BAD_SHAPES = {
    "scalar_prefix": ("generate", dict(prefix="分开"),
                      ["`prefix` must have shape [batch]", "got shape []"]),
    "2d_prefix": ("generate", dict(prefix=[["分开"], ["不"]]),
                  ["`prefix` must have shape [batch]", "got shape [2, 1]"]),
    "vector_num_chars": ("generate", dict(num_chars=[5]),
                         ["`num_chars` must have shape []", "got shape [1]"]),
    "vector_temperature": ("generate", dict(temperature=[0.0, 1.0]),
                           ["`temperature` must have shape []", "got shape [2]"]),
    "matrix_seed": ("generate", dict(seed=[[0]]), ["`seed` must have shape []",
                                                   "got shape [1, 1]"]),
    "wide_state": ("step", dict(state="1,S+1"), ["`state` must have shape [batch, S]",
                                                 "got shape [1, S+1]"]),
    "narrow_state": ("step", dict(state="1,S-1"), ["`state` must have shape [batch, S]",
                                                   "got shape [1, S-1]"]),
    "vector_state": ("step", dict(state="S"), ["`state` must have shape [batch, S]",
                                               "got shape [S]"]),
    "3d_state": ("step", dict(state="1,S,1"), ["`state` must have shape [batch, S]",
                                               "got shape [1, S, 1]"]),
    "scalar_token_ids": ("step", dict(token_ids=1), ["`token_ids` must have shape [batch]",
                                                     "got shape []"]),
    "2d_token_ids": ("step", dict(token_ids=[[1]]), ["`token_ids` must have shape [batch]",
                                                     "got shape [1, 1]"]),
    "vector_batch_size": ("initial_state", dict(batch_size=[2]),
                          ["`batch_size` must have shape []", "got shape [1]"]),
}


def _sized(text, state_size):
    """"S+1" -> "25" for a state size of 24 (and "S" -> "24", "S-1" -> "23")."""
    for token, value in (("S+1", state_size + 1), ("S-1", state_size - 1), ("S", state_size)):
        text = text.replace(token, str(value))
    return text


def _call(saved, signature, change, state_size):
    args = {
        "generate": {k: tf.constant(v, DTYPES[k]) for k, v in GOOD.items()},
        "step": dict(token_ids=tf.constant([1]), state=tf.zeros([1, state_size])),
        "initial_state": dict(batch_size=tf.constant(1)),
    }[signature]
    for name, value in change.items():
        if name == "state":
            shape = [int(d) for d in _sized(value, state_size).split(",")]
            args[name] = tf.zeros(shape)
        else:
            args[name] = tf.constant(value, args[name].dtype)
    return saved.signatures[signature](**args)


@pytest.mark.parametrize("case", sorted(BAD_SHAPES))
def test_signatures_name_a_wrong_shape(exports, model_name, case):
    ex = exports.get(model_name)
    state_size = sum(ex.model.state_sizes)
    signature, change, parts = BAD_SHAPES[case]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        _call(ex.loaded(), signature, change, state_size)
    message = generate.assertion_message(info.value.message)
    for part in parts:
        assert _sized(part, state_size) in message, message
    assert message.startswith(_sized(parts[0], state_size)), message


def test_signatures_still_take_the_right_shapes(exports, model_name):
    """The checks pass what the README documents, the empty-batch checks still come next."""
    ex = exports.get(model_name)
    saved, state_size = ex.loaded(), sum(ex.model.state_sizes)
    state = saved.signatures["initial_state"](batch_size=tf.constant(3))["state"]
    assert state.shape == (3, state_size)
    out = saved.signatures["step"](token_ids=tf.constant([1, 2, 3]), state=state)
    assert out["logits"].shape == (3, len(ex.vocab)) and out["state"].shape == (3, state_size)
    text = _call(saved, "generate", dict(prefix=["分开", "the"]), state_size)["text"]
    assert text.shape == (2,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        saved.signatures["step"](token_ids=tf.zeros([0], tf.int32),
                                 state=tf.zeros([0, state_size]))


# Issue 13, item 10: a prefix that is not UTF-8 was read with U+FFFD for its bad bytes and came
# back with them.
BAD_UTF8 = {
    "lone_byte": [b"\xff"],
    "truncated": [b"\xe5\x88"],  # the first two bytes of 分
    "overlong": [b"\xc0\x80"],
    "surrogate": [b"\xed\xa0\x80"],
    "past_max": [b"\xf4\x90\x80\x80"],
    "one_of_a_batch": ["分开".encode(), b"the \xe5\x88", "不".encode()],
}


@pytest.mark.parametrize("case", sorted(BAD_UTF8))
def test_generate_rejects_invalid_utf8(exports, model_name, case):
    saved = exports.get(model_name).loaded()
    prefixes = BAD_UTF8[case]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        _call(saved, "generate", dict(prefix=prefixes), 0)
    message = generate.assertion_message(info.value.message)
    bad = " ".join(str(i) for i, p in enumerate(prefixes) if not _is_utf8(p))
    assert message == ("every `prefix` must be valid UTF-8 text, got invalid bytes in the "
                       f"prefix(es) at batch index [{bad}]"), message


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")  # strict: no surrogates, no overlong forms, nothing past U+10FFFF
    except UnicodeDecodeError:
        return False
    return True


def test_generate_takes_the_replacement_character_itself(saved):
    """U+FFFD is a valid character: only invalid bytes are refused."""
    out = saved.signatures["generate"](prefix=tf.constant(["分\ufffd"]), num_chars=tf.constant(3),
                                       temperature=tf.constant(0.0), seed=tf.constant(0))
    assert out["text"].numpy()[0].decode("utf-8").startswith("分\ufffd")


def test_tflite_step_loop_rejects(exports):
    ex = exports.get("lstm")
    lm, meta = TFLiteStepModel(ex.tflite_path), ExportMetadata.load(ex.path / "model.json")
    for kwargs, message in [(dict(num_chars=10_001), "`num_chars` must be between 0 and 10000"),
                            (dict(num_chars=-2), "`num_chars` must be between 0 and 10000"),
                            (dict(temperature=-1.0), "`temperature` must be a finite number")]:
        with pytest.raises(generate.GenerateError, match=message):
            generate.generate_tflite(lm, meta, "分开", **{"num_chars": 5, **kwargs})
    with pytest.raises(generate.GenerateError, match="non-empty"):
        generate.generate_tflite(lm, meta, "", 5)


def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "rnnzoo.generate", *args], capture_output=True,
                          text=True, timeout=180, env=env)


CLI_CASES = {
    "num_chars_past_max": (["--prefix=分开", "--num_chars=10001"], "`num_chars` must be between"),
    "negative_num_chars": (["--prefix=分开", "--num_chars=-1"], "`num_chars` must be between"),
    "negative_temperature": (["--prefix=分开", "--temperature=-1"], "`temperature` must be"),
    "empty_prefix": (["--prefix="], "every `prefix` must be a non-empty string"),
    "no_prefix": ([], "--prefix"),
}


@pytest.mark.parametrize("target", ["saved_model", "tflite"])
@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_rejects_without_traceback(exports, target, case):
    ex = exports.get("lstm")
    model = ex.saved_model_dir if target == "saved_model" else ex.tflite_path
    args, message = CLI_CASES[case]
    proc = _cli(f"--model={model}", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_a_missing_model(tmp_path):
    proc = _cli(f"--model={tmp_path / 'nothing'}", "--prefix=分开")
    assert proc.returncode != 0
    assert "is neither a SavedModel directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_tflite_needs_model_json(exports, tmp_path):
    lonely = tmp_path / "model.tflite"
    lonely.write_bytes(exports.get("lstm").tflite_path.read_bytes())
    proc = _cli(f"--model={lonely}", "--prefix=分开")
    assert proc.returncode != 0
    assert "model.json" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("target", ["export_dir", "saved_model", "tflite"])
def test_cli_generates(exports, target):
    ex = exports.get("lstm")
    model = {"export_dir": ex.path, "saved_model": ex.saved_model_dir,
             "tflite": ex.tflite_path}[target]
    proc = _cli(f"--model={model}", "--prefix=分开", "--num_chars=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = generate.generate_saved_model(ex.loaded(), ["分开"], 20)[0]
    assert proc.stdout == want + "\n"


def test_cli_tflite_and_model_json_must_match(exports, tmp_path):
    (tmp_path / "model.tflite").write_bytes(exports.get("lstm").tflite_path.read_bytes())
    (tmp_path / "model.json").write_bytes((exports.get("gru").path / "model.json").read_bytes())
    proc = _cli(f"--model={tmp_path / 'model.tflite'}", "--prefix=分开")
    assert proc.returncode != 0
    assert "does not match the model.json" in proc.stderr and "Traceback" not in proc.stderr
