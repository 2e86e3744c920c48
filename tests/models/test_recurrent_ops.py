"""rnnzoo's C++ sequence ops (`rnnzoo/ops/recurrent_kernels.cc`) against independent references.

- The LSTM and GRU ops, called directly, against a NumPy loop (forward) and against
  `tf.GradientTape` on a plain TensorFlow loop (every gradient), for shapes that exercise the
  kernel's edges (batches that are not a multiple of its row tile, hidden sizes that leave a
  partial chunk of units, one to three threads).
- `run_layer(..., fused=True)` against the plain loop (`fast=False`), eagerly, under
  `tf.function` and with an unknown number of steps.
- `RnnzooRowsGrad` against `np.add.at`.
- The models: training runs through the ops (and only training: no export holds them), and a
  2-layer LSTM / a GRU char LM get the plain loop's gradients through them.

Skipped where the ops cannot be had (no C++ compiler, `RNNZOO_OPS=off`, a GPU); there the
models train on the TensorFlow graph, which `test_recurrence.py` checks.
"""

import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import cells, ops
from rnnzoo.models import CharLM, recurrence


@pytest.fixture(scope="module")
def library():
    if os.environ.get(ops.ENV_SWITCH, "").lower() == "off":
        pytest.skip("the C++ ops are switched off ($RNNZOO_OPS=off)")
    if ops._compiler() is None:
        pytest.skip("no C++ compiler: models train on the TensorFlow graph here")
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("the sequence ops are CPU ops")
    return ops.load_recurrent_ops(required=True)  # with a compiler, a failed build fails


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_numpy(x, h, c, w):
    hs, cs, gates = [], [], []
    n = h.shape[1]
    for x_t in x:
        z = x_t + h @ w
        i, f, o = (_sigmoid(z[:, k * n:(k + 1) * n]) for k in (0, 1, 3))
        g = np.tanh(z[:, 2 * n:3 * n])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h), cs.append(c), gates.append(np.concatenate([i, f, g, o], -1))
    return np.stack(hs), np.stack(cs), np.stack(gates)


def _gru_numpy(x, h, w, b):
    hs = []
    n = h.shape[1]
    for x_t in x:
        rec = h @ w + b
        z = _sigmoid(x_t[:, :n] + rec[:, :n])
        r = _sigmoid(x_t[:, n:2 * n] + rec[:, n:2 * n])
        cand = np.tanh(x_t[:, 2 * n:] + r * rec[:, 2 * n:])
        h = z * h + (1 - z) * cand
        hs.append(h)
    return np.stack(hs)


# (steps, batch, units, threads): rows left over by the 8- (AVX-512) or 6-row (AVX2) tile,
# one chunk, a partial chunk, several chunks, more threads than chunks; 0 = the device's.
SHAPES = [(3, 5, 20, 2), (7, 1, 37, 2), (6, 3, 70, 2), (4, 9, 100, 3), (4, 9, 8, 1),
          (5, 33, 64, 0), (2, 3, 17, 3)]


@pytest.mark.parametrize("steps,batch,units,threads", SHAPES)
def test_lstm_op_matches_numpy_and_autodiff(library, steps, batch, units, threads):
    rng = np.random.default_rng(units)
    x = rng.normal(size=(steps, batch, 4 * units)).astype("float32")
    h0, c0 = (rng.normal(size=(batch, units)).astype("float32") for _ in range(2))
    w = (rng.normal(size=(units, 4 * units)) / np.sqrt(units)).astype("float32")
    hs, cs, gates = library.rnnzoo_lstm_sequence(x, h0, c0, w, max_threads=threads)
    for got, want in zip((hs, cs, gates), _lstm_numpy(x, h0, c0, w), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)

    d_hs, d_h, d_c = (tf.constant(rng.normal(size=s).astype("float32"))
                      for s in [(steps, batch, units), (batch, units), (batch, units)])
    xt, h0t, c0t, wt = map(tf.constant, (x, h0, c0, w))
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t, c0t, wt])
        h, c, outputs = h0t, c0t, []
        for t in range(steps):
            i, f, g, o = tf.split(xt[t] + h @ wt, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        loss = (tf.reduce_sum(tf.stack(outputs) * d_hs) + tf.reduce_sum(h * d_h)
                + tf.reduce_sum(c * d_c))
    want_x, want_h0, want_c0, want_w = tape.gradient(loss, [xt, h0t, c0t, wt])
    d_x, d_h0, d_c0 = library.rnnzoo_lstm_sequence_grad(w, c0, cs, gates, d_hs, d_h, d_c,
                                                        max_threads=threads)
    h_prev = np.concatenate([h0[None], hs.numpy()[:-1]])
    d_w = np.einsum("tbk,tbj->kj", h_prev, d_x.numpy())
    for got, want in zip((d_x, d_h0, d_c0, d_w), (want_x, want_h0, want_c0, want_w),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps,batch,units,threads", SHAPES)
def test_gru_op_matches_numpy_and_autodiff(library, steps, batch, units, threads):
    rng = np.random.default_rng(units + 1)
    x = rng.normal(size=(steps, batch, 3 * units)).astype("float32")
    h0 = rng.normal(size=(batch, units)).astype("float32")
    w = (rng.normal(size=(units, 3 * units)) / np.sqrt(units)).astype("float32")
    b = rng.normal(size=(3 * units,)).astype("float32")
    hs, saved = library.rnnzoo_gru_sequence(x, h0, w, b, max_threads=threads)
    np.testing.assert_allclose(hs, _gru_numpy(x, h0, w, b), rtol=1e-5, atol=2e-6)

    d_hs, d_h = (tf.constant(rng.normal(size=s).astype("float32"))
                 for s in [(steps, batch, units), (batch, units)])
    xt, h0t, wt, bt = map(tf.constant, (x, h0, w, b))
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t, wt, bt])
        h, outputs = h0t, []
        for t in range(steps):
            x_z, x_r, x_h = tf.split(xt[t], 3, axis=-1)
            r_z, r_r, r_h = tf.split(h @ wt + bt, 3, axis=-1)
            z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
            h = z * h + (1 - z) * tf.tanh(x_h + r * r_h)
            outputs.append(h)
        loss = tf.reduce_sum(tf.stack(outputs) * d_hs) + tf.reduce_sum(h * d_h)
    want = tape.gradient(loss, [xt, h0t, wt, bt])
    d_x, d_rec, d_h0 = library.rnnzoo_gru_sequence_grad(w, h0, hs, saved, d_hs, d_h,
                                                        max_threads=threads)
    h_prev = np.concatenate([h0[None], hs.numpy()[:-1]])
    got = [d_x, d_h0, np.einsum("tbk,tbj->kj", h_prev, d_rec.numpy()),
           d_rec.numpy().sum((0, 1))]
    for g, w_ in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w_, rtol=1e-4, atol=1e-5)


def test_ops_refuse_inconsistent_shapes(library):
    x = tf.zeros([3, 2, 8])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[T, B, 4H\].*got \[3,2,8\]"):
        library.rnnzoo_lstm_sequence(x, tf.zeros([2, 3]), tf.zeros([2, 3]), tf.zeros([3, 12]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[T, B, 3H\]"):
        library.rnnzoo_gru_sequence(x, tf.zeros([2, 2]), tf.zeros([2, 6]), tf.zeros([5]))


def test_two_ops_at_once_give_each_ones_result(library):
    """Concurrent calls (TensorFlow's inter-op threads, Python threads) share the intra-op
    pool: each still computes its own sequence."""
    rng = np.random.default_rng(3)
    args = [[tf.constant(rng.normal(size=s).astype("float32"))
             for s in [(9, 16, 256), (16, 64), (16, 64), (64, 256)]] for _ in range(4)]
    want = [library.rnnzoo_lstm_sequence(*a, max_threads=1)[0].numpy() for a in args]
    both = tf.function(lambda: [library.rnnzoo_lstm_sequence(*a)[0] for a in args])
    results = {}

    def run(k):
        results[k] = [r.numpy() for r in both()]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_rows_grad_matches_add_at(library):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 7, 50).astype("int32")
    grad = rng.normal(size=(50, 200)).astype("float32")
    d_table, d_bias = library.rnnzoo_rows_grad(ids, grad, 9)
    want = np.zeros((9, 200), "float32")
    np.add.at(want, ids, grad)
    np.testing.assert_allclose(d_table, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_bias, grad.sum(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ids\[2\] = 9 is not in \[0, 9\)"):
        library.rnnzoo_rows_grad(np.array([0, 1, 9], "int32"), grad[:3], 9)


# ---------------------------------------------------------------------------- through the models


T, B, D, H = 5, 3, 4, 6


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["eager", "tf_function", "unknown_length"])
def test_run_layer_fused_matches_autodiff(library, name, mode):
    """`run_layer(fused=True)`: outputs, final states and every gradient of the plain loop,
    also with a gradient arriving at the final states only."""
    cell = (cells.LSTMCell if name == "lstm" else cells.GRUCell)(H, seed=0)
    cell.build((None, D))
    rng = np.random.default_rng(7)
    for w in cell.weights:
        w.assign(rng.normal(0.0, 0.5, w.shape).astype("float32"))
    xs = tf.constant(rng.normal(size=(T, B, D)).astype("float32"))
    states = [tf.constant(rng.normal(0.0, 0.5, (B, H)).astype("float32"))
              for _ in range(2 if name == "lstm" else 1)]

    def loss_and_grads(x, s, fused):
        with tf.GradientTape() as tape:
            tape.watch([x, *s])
            outputs, final = recurrence.run_layer(cell, cell.project_inputs(x), s,
                                                  fast=fused, fused=fused)
            loss = tf.reduce_sum(outputs * tf.sin(outputs))
            loss += sum(tf.reduce_sum(v * tf.cos(v)) for v in final)
        grads = tape.gradient(loss, [x, *s, *cell.trainable_variables])
        return [outputs, *final], [tf.convert_to_tensor(g) for g in grads]

    run = loss_and_grads
    if mode == "tf_function":
        run = tf.function(loss_and_grads)
    elif mode == "unknown_length":
        signature = [tf.TensorSpec([None, B, D]), [tf.TensorSpec([B, H])] * len(states)]
        fused_fn = tf.function(lambda x, s: loss_and_grads(x, s, True), input_signature=signature)
        plain_fn = tf.function(lambda x, s: loss_and_grads(x, s, False), input_signature=signature)
        run = lambda x, s, fused: (fused_fn if fused else plain_fn)(x, s)  # noqa: E731
    got_values, got_grads = run(xs, states, True)
    want_values, want_grads = run(xs, states, False)
    for got, want in zip([*got_values, *got_grads], [*want_values, *want_grads], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with tf.GradientTape() as tape:  # only the last final state is read
        tape.watch(states)
        _, final = recurrence.run_layer(cell, cell.project_inputs(xs), states, fused=True)
        loss = tf.reduce_sum(final[-1])
    assert all(g is not None for g in tape.gradient(loss, [*states, cell.recurrent_kernel]))


def _op_types(fn, *args):
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


@pytest.mark.parametrize("cell,num_layers", [("lstm", 2), ("gru", 1)])
def test_char_lm_trains_through_the_ops_with_the_plain_loops_gradients(library, cell,
                                                                       num_layers):
    model = CharLM(11, cell=cell, num_layers=num_layers, units=H, init="keras", seed=8)
    ids = tf.constant(np.random.default_rng(9).integers(0, 11, (B, T)), tf.int32)
    states = [tf.random.normal([B, H], seed=i) for i in range(2 * num_layers
                                                              if cell == "lstm" else 1)]

    def grads(fast, training=True):
        model.fast_recurrence = fast
        with tf.GradientTape() as tape:
            tape.watch(states)
            logits, final = model(ids, states, training=training)
            loss = tf.reduce_sum(logits * tf.sin(logits)) + sum(tf.reduce_sum(s) for s in final)
        return [tf.convert_to_tensor(g)
                for g in tape.gradient(loss, [*model.trainable_variables, *states])]

    for got, want in zip(grads(True), grads(False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    sequence_op = "RnnzooLstmSequence" if cell == "lstm" else "RnnzooGruSequence"
    model.fast_recurrence = True
    assert sequence_op in _op_types(tf.function(lambda: model(ids, states, training=True)))
    # Inference (what generation and every export trace) never holds the ops ...
    assert not any(t.startswith("Rnnzoo")
                   for t in _op_types(tf.function(lambda: model(ids, states))))
    # ... nor does training with them switched off (XLA cannot compile them).
    model.fused_recurrence = False
    assert sequence_op not in _op_types(tf.function(lambda: model(ids, states, training=True)))


def test_switch_off_trains_on_the_graph(monkeypatch):
    monkeypatch.setenv(recurrence.FUSED_SWITCH, "off")
    assert not recurrence.fused_available()
    cell = cells.LSTMCell(H, seed=0)
    cell.build((None, D))
    fn = tf.function(lambda x: recurrence.run_layer(cell, cell.project_inputs(x),
                                                    [tf.zeros([B, H])] * 2, fused=True)[0])
    assert "RnnzooLstmSequence" not in _op_types(fn, tf.zeros([T, B, D]))


def test_layers_wider_than_the_ops_limit_train_on_the_graph(library):
    """Above `FUSED_MAX_UNITS` units (where the ops measured slower) training keeps the graph,
    a stack of LSTMs its pipelined loop."""
    units = recurrence.FUSED_MAX_UNITS + 8
    model = CharLM(5, cell="lstm", num_layers=2, units=units, init="keras", seed=1)
    ids = tf.zeros([2, 3], tf.int32)
    types = _op_types(tf.function(lambda: model(ids, training=True)))
    assert "RnnzooLstmSequence" not in types
    narrow = CharLM(5, cell="lstm", num_layers=2, units=recurrence.FUSED_MAX_UNITS, seed=1)
    assert "RnnzooLstmSequence" in _op_types(tf.function(lambda: narrow(ids, training=True)))
