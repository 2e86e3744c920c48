"""The SavedModel's signature contract: seen by saved_model_cli, used without rnnzoo, batched."""

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_registry import EPOCHS, load_model

from rnnzoo import generate
from rnnzoo.export.metadata import ExportMetadata
from rnnzoo.export.runtime import TFLiteStepModel
from rnnzoo.models.generation import TextGenerator
from rnnzoo.zoo import export_run

# signature -> ({input: (dtype, shape)}, {output: (dtype, shape)}); "S" is the state size.
# Inputs are declared with an unknown shape: the signatures check the shapes themselves, with
# a message naming the argument (test_export_bad_inputs.py); the outputs keep theirs.
ANY = "unknown_rank"
CONTRACT = {
    "generate": ({"prefix": ("DT_STRING", ANY), "num_chars": ("DT_INT32", ANY),
                  "temperature": ("DT_FLOAT", ANY), "seed": ("DT_INT32", ANY)},
                 {"text": ("DT_STRING", "(-1)")}),
    "step": ({"token_ids": ("DT_INT32", ANY), "state": ("DT_FLOAT", ANY)},
             {"logits": ("DT_FLOAT", "(-1, V)"), "state": ("DT_FLOAT", "(-1, S)")}),
    "initial_state": ({"batch_size": ("DT_INT32", ANY)}, {"state": ("DT_FLOAT", "(-1, S)")}),
}
CONTRACT["serving_default"] = CONTRACT["generate"]


def _signature_blocks(cli_output: str) -> dict[str, str]:
    parts = re.split(r"^signature_def\['([^']+)'\]:\n", cli_output, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _tensors(block: str, kind: str) -> dict[str, tuple[str, str]]:
    found = re.findall(rf"{kind}\['(\w+)'\] tensor_info:\n\s+dtype: (\w+)\n\s+shape: (.+)\n",
                       block)
    return {name: (dtype, shape) for name, dtype, shape in found}


def test_saved_model_cli_lists_the_signatures(exports):
    ex = exports.get("lstm_2layer")
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    if not cli.exists():
        pytest.skip(f"{cli} not found")
    out = subprocess.run([str(cli), "show", "--all", "--dir", str(ex.saved_model_dir)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    blocks = _signature_blocks(out)
    sizes = {"S": str(sum(ex.model.state_sizes)), "V": str(len(ex.vocab))}
    for name, (inputs, outputs) in CONTRACT.items():
        assert name in blocks, f"signature {name} missing from saved_model_cli output:\n{out}"
        want_in = {k: (d, s.replace("S", sizes["S"])) for k, (d, s) in inputs.items()}
        want_out = {k: (d, s.replace("S", sizes["S"]).replace("V", sizes["V"]))
                    for k, (d, s) in outputs.items()}
        assert _tensors(blocks[name], "inputs") == want_in, name
        assert _tensors(blocks[name], "outputs") == want_out, name


_NO_RNNZOO = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    path, prefixes = sys.argv[1], json.loads(sys.argv[2])
    model = tf.saved_model.load(path)
    gen = model.signatures["generate"](
        prefix=tf.constant(prefixes), num_chars=tf.constant(40), temperature=tf.constant(0.0),
        seed=tf.constant(0))["text"]
    default = model.signatures["serving_default"](
        prefix=tf.constant(prefixes), num_chars=tf.constant(40), temperature=tf.constant(0.0),
        seed=tf.constant(0))["text"]
    state = model.signatures["initial_state"](batch_size=tf.constant(2))["state"]
    out = model.signatures["step"](token_ids=tf.constant([1, 2]), state=state)
    assert "rnnzoo" not in sys.modules, sorted(m for m in sys.modules if "rnnzoo" in m)
    print(json.dumps({"text": [t.decode() for t in gen.numpy()],
                      "default": [t.decode() for t in default.numpy()],
                      "logits": out["logits"].numpy().tolist(),
                      "state_shape": list(out["state"].shape)}))
""")


def test_runs_in_a_process_that_never_imports_rnnzoo(exports, tmp_path):
    ex = exports.get("lstm")
    # A copy elsewhere: nothing may point back into the run or the package.
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(ex.saved_model_dir), str(copy)], check=True)
    prefixes = ["分开", "the time\n"]
    proc = subprocess.run([sys.executable, "-c", _NO_RNNZOO, str(copy), json.dumps(prefixes)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    generator = TextGenerator(ex.model, ex.vocab)
    assert got["text"] == [generator(p, 40) for p in prefixes]
    assert got["default"] == got["text"]
    want_logits, _ = ex.model.step(tf.constant([1, 2]), ex.model.initial_state(2))
    np.testing.assert_allclose(got["logits"], want_logits.numpy(), atol=1e-5)
    assert got["state_shape"] == [2, sum(ex.model.state_sizes)]


@pytest.mark.parametrize("name", ["lstm", "keras_gru"])
def test_batch_of_prefixes_of_different_lengths(exports, name):
    """Each row is teacher-forced to the end of its own prefix: same text as alone."""
    ex = exports.get(name)
    prefixes = ["分开", "the time traveller", "我", "不分开\n"]
    batched = generate.generate_saved_model(ex.loaded(), prefixes, 30)
    generator = TextGenerator(ex.model, ex.vocab)
    assert batched == [generator(p, 30) for p in prefixes]
    assert batched == [generate.generate_saved_model(ex.loaded(), [p], 30)[0] for p in prefixes]


def test_out_of_vocabulary_characters_read_as_unk(exports):
    ex = exports.get("gru")
    prefix = "分开Q😀"  # neither character is in the vocabulary
    assert "Q" not in ex.vocab and "😀" not in ex.vocab
    want = TextGenerator(ex.model, ex.vocab)(prefix, 25)  # the vocabulary's own "unk" policy
    meta = ExportMetadata.load(ex.path / "model.json")
    assert meta.encode(prefix)[-2:] == [0, 0]
    assert generate.generate_saved_model(ex.loaded(), [prefix], 25) == [want]
    lite = generate.generate_tflite(TFLiteStepModel(ex.tflite_path), meta, prefix, 25)
    assert lite == want


def test_sampling_matches_training_samples(exports):
    """With temperature > 0 the signature samples as `TextGenerator` (same stateless seeds)."""
    ex = exports.get("lstm")
    want = TextGenerator(ex.model, ex.vocab)("分开", 60, temperature=0.8, seed=11)
    got = generate.generate_saved_model(ex.loaded(), ["分开"], 60, temperature=0.8, seed=11)
    assert got == [want]
    other = generate.generate_saved_model(ex.loaded(), ["分开"], 60, temperature=0.8, seed=12)
    assert other != got


def test_zero_chars_returns_the_prefixes(exports):
    ex = exports.get("rnn")
    prefixes = ["a", "分开 ", "\n"]
    assert generate.generate_saved_model(ex.loaded(), prefixes, 0) == prefixes


def test_vocabulary_travels_as_an_asset(exports):
    ex = exports.get("lstm")
    asset = ex.saved_model_dir / "assets" / "vocab.tokens.b64"
    lines = asset.read_bytes().split(b"\n")[:-1]
    assert [tf.io.decode_base64(line).numpy().decode() for line in lines] == ex.vocab.tokens
    assert "\n" in ex.vocab.tokens and " " in ex.vocab.tokens


def test_unknown_token_is_never_generated(exports, tmp_path):
    """Even a model that would rather say <unk> writes real characters, in every runtime."""
    run = exports.copy_run("rnn", tmp_path / "run")
    model, _ = load_model(run)  # the trained weights, rebuilt from the copy
    bias = model.head.bias.numpy()
    bias[0] += 100.0  # <unk> (id 0) is now the greedy choice everywhere
    model.head.bias.assign(bias)
    # Saved as training saves: the recurrent weights reach the checkpoint via the optimizer.
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(EPOCHS + 1, dtype=tf.int64, name="epoch")
    checkpoint = run.checkpoint(model, optimizer=optimizer, epoch=epoch)
    tf.train.CheckpointManager(checkpoint, str(run.checkpoint_dir), max_to_keep=3,
                               checkpoint_name="ckpt").save(EPOCHS + 1)
    result = export_run(run.path, tmp_path / "export", log=lambda *_: None)
    vocab = run.read_vocab()
    want = TextGenerator(model, vocab)("分开Q", 30)
    assert "<unk>" not in want[3:]
    assert generate.generate_saved_model(result.path / "saved_model", ["分开Q"], 30) == [want]
    meta = ExportMetadata.load(result.path / "model.json")
    lite = TFLiteStepModel(result.path / "model.tflite")
    assert generate.generate_tflite(lite, meta, "分开Q", 30) == want
    sampled = generate.generate_tflite(lite, meta, "分开Q", 30, temperature=1.0, seed=1)
    assert "<unk>" not in sampled[3:]
