"""benchmarks/throughput.py, the bigram LSTM lines: the presets' models in rnnzoo and in
keras.layers, the same training step for the same weights, and one timed round through main()."""

import importlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture(scope="module")
def throughput():
    """The script as a module (it imports no PyTorch: that runs in its own worker process)."""
    return importlib.import_module("throughput")


V = 28


def _copy_weights(src, dst):
    """rnnzoo-impl bigram CharLM -> keras-impl one (the same layouts)."""
    dst.embedding.set_weights(src.embedding.get_weights())
    for s, d in zip(src.cells, dst.cells):
        d.kernel.assign(s.kernel)
        d.recurrent_kernel.assign(s.recurrent_kernel)
        d.bias.assign(s.bias)
    dst.head.set_weights(src.head.get_weights())


def _batch_and_states(throughput, model_name, model, seed=0):
    """A benchmark batch and a nonzero carried state (`h`, `c`, the previous character)."""
    batch_size, num_steps, units = throughput.shape_of(model_name)
    x, y = throughput.random_batches(V, seed, batch_size=batch_size, num_steps=num_steps)[1]
    rng = np.random.default_rng(seed)
    states = [tf.constant(rng.normal(0, 0.5, (batch_size, units)), tf.float32) for _ in "hc"]
    states.append(tf.constant(rng.integers(0, V, (batch_size, 1)), tf.float32))
    assert [s.shape[1] for s in states] == model.state_sizes
    return (tf.constant(x, tf.int32), tf.constant(y, tf.int32)), states


@pytest.mark.parametrize("model_name, units, dropout", [
    ("bigram_lstm", 64, 0.0), ("bigram_lstm512", 512, 0.4)])
def test_bigram_lines_train_the_presets_model_in_rnnzoo_and_keras_layers(
        throughput, model_name, units, dropout):
    assert model_name in throughput.MODELS
    assert throughput.shape_of(model_name) == (64, 10, units)
    ours = throughput.tf_trainer(model_name, V, "rnnzoo")
    theirs = throughput.tf_trainer(model_name, V, "keras")
    for trainer in (ours, theirs):
        assert trainer.clip_norm == 1.25
        # The presets' optimizers: the course's SGD at 10; the large one Adam at 0.002.
        optimizer, lr = ((keras.optimizers.SGD, 10.0) if units == 64
                         else (keras.optimizers.Adam, 0.002))
        assert isinstance(trainer.optimizer, optimizer)
        assert float(trainer.optimizer.learning_rate) == pytest.approx(lr)
        m = trainer.model
        assert (m.inputs, m.cell_type, m.num_layers, m.units, m.dropout) == (
            "bigrams", "lstm", 1, units, dropout)
        assert isinstance(m.embedding, keras.layers.Embedding)
        assert (m.embedding.input_dim, m.embedding.output_dim) == (V * V, 128)
        assert isinstance(m.head, keras.layers.Dense) and m.head.units == V
        assert len(m.dropouts) == (2 if dropout else 0)  # the LSTM's input and output
        assert all(isinstance(d, keras.layers.Dropout) and d.rate == dropout
                   for d in m.dropouts)
    assert ours.model.impl == "rnnzoo" and not ours.model.rnn_layers
    (layer,) = theirs.model.rnn_layers
    assert type(layer) is keras.layers.LSTM
    assert layer.units == units and layer.return_sequences and layer.return_state


def test_bigram_lstm_step_is_the_same_in_rnnzoo_and_keras(throughput):
    """One training step from the same weights and state: same loss, gradient norm, new state
    and updated weights (bigram ids, loss, clip and SGD shared)."""
    ours = throughput.tf_trainer("bigram_lstm", V, "rnnzoo")
    theirs = throughput.tf_trainer("bigram_lstm", V, "keras")
    _copy_weights(ours.model, theirs.model)
    batch, states = _batch_and_states(throughput, "bigram_lstm", ours.model)
    loss_a, count_a, norm_a, states_a = ours.train_step(batch, states)
    loss_b, count_b, norm_b, states_b = theirs.train_step(batch, states)
    assert float(count_a) == float(count_b) == 64 * 10
    np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-5)
    np.testing.assert_allclose(float(norm_a), float(norm_b), rtol=1e-4)
    for a, b in zip(states_a, states_b):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_array_equal(states_a[-1].numpy()[:, 0], batch[0].numpy()[:, -1])
    pairs = [(ours.model.embedding.embeddings, theirs.model.embedding.embeddings),
             (ours.model.cells[0].kernel, theirs.model.cells[0].kernel),
             (ours.model.cells[0].recurrent_kernel, theirs.model.cells[0].recurrent_kernel),
             (ours.model.cells[0].bias, theirs.model.cells[0].bias),
             (ours.model.head.kernel, theirs.model.head.kernel),
             (ours.model.head.bias, theirs.model.head.bias)]
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)


def test_bigram_lstm512_same_loss_without_dropout_and_drops_in_training(throughput):
    """The large preset: the same loss for the same weights at evaluation; both drop units in
    training (their masks differ: rnnzoo drops the time-major input)."""
    ours = throughput.tf_trainer("bigram_lstm512", V, "rnnzoo")
    theirs = throughput.tf_trainer("bigram_lstm512", V, "keras")
    _copy_weights(ours.model, theirs.model)
    batch, states = _batch_and_states(throughput, "bigram_lstm512", ours.model, seed=1)
    losses = {}
    for name, trainer in (("ours", ours), ("theirs", theirs)):
        for training in (False, True):
            loss, count, _ = trainer.loss_fn(trainer.model, batch, states, training)
            losses[name, training] = float(loss / count)
    np.testing.assert_allclose(losses["ours", False], losses["theirs", False], rtol=1e-5)
    for name in ("ours", "theirs"):
        assert losses[name, True] != pytest.approx(losses[name, False], rel=1e-4)


def test_one_timed_round_of_the_bigram_line(throughput, tmp_path, capsys):
    out = tmp_path / "bigram.json"
    throughput.main(["--models=bigram_lstm", "--vocab_sizes=1027", "--reps=1", "--steps=1",
                     "--no_generation", "--no_torch", f"--out={out}"])
    records = json.loads(out.read_text())
    assert [(r["model"], r["vocab_size"], r["impl"]) for r in records] == [
        ("bigram_lstm", 28, "rnnzoo"), ("bigram_lstm", 28, "keras")]
    for r in records:
        assert r["tokens_per_sec"] > 0 and r["min"] <= r["tokens_per_sec"] <= r["max"]
        assert (r["preset"], r["batch_size"], r["num_steps"], r["units"], r["dropout"]) == (
            "course_bigram_lstm", 64, 10, 64, 0.0)
    text = capsys.readouterr().out
    assert "| bigram_lstm | 28 | " in text
    assert "each implementation in its own worker process" in text
    ratio = records[0]["tokens_per_sec"] / records[1]["tokens_per_sec"]
    assert f"{ratio:.2f}x |" in text
    # With a torch column, the bigram line shows none.
    table = throughput.table(records + [dict(records[0], model="lstm", impl="torch")],
                             has_torch=True)
    r = records[0]
    assert (f"| bigram_lstm | 28 | {r['tokens_per_sec']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})"
            " | ") in table
    assert table.splitlines()[2].endswith(f" | — | {ratio:.2f}x | — |")


def test_torch_worker_spec_is_d2l_step_of_the_line(throughput):
    assert throughput.torch_spec("lstm2", 1027, 2) == {
        "kind": "train", "cell": "lstm", "num_layers": 2, "vocab_size": 1027, "batch_size": 32,
        "num_steps": 35, "units": 256, "lr": 1.0, "clip": 1.0, "num_batches": 4, "threads": 2}


def test_table_adds_an_ab_column_for_another_checkout(throughput):
    base = {"model": "lstm", "vocab_size": 28, "min": 1.0, "max": 3.0}
    records = [dict(base, impl="rnnzoo", tokens_per_sec=2.0),
               dict(base, impl="keras", tokens_per_sec=1.0),
               dict(base, impl="rnnzoo@other", tokens_per_sec=4.0)]
    lines = throughput.table(records, has_torch=False).splitlines()
    assert lines[0] == ("| model | V | rnnzoo tok/s | keras tok/s | rnnzoo@other tok/s | "
                        "rnnzoo/keras | rnnzoo/rnnzoo@other |")
    assert lines[2] == "| lstm | 28 | 2 (1-3) | 1 (1-3) | 4 (1-3) | 2.00x | 0.50x |"
