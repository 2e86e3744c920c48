"""The trainer under tf.distribute: two replicas must take the step one device takes.

Run in a subprocess: the two logical CPU devices must be configured before TensorFlow starts.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from rnnzoo.models import CharLM
    from rnnzoo.training.trainer import Trainer

    V, B, T = 13, 8, 5
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, V, (B, T)), tf.int32)
    y = tf.constant(rng.integers(0, V, (B, T)), tf.int32)

    def build():
        return CharLM(V, cell="lstm", units=8, init="keras", seed=0)

    single = build()
    one = Trainer(single, keras.optimizers.SGD(0.5), clip_norm=0.05)
    loss1, count1, norm1, _ = one.train_step((x, y), single.initial_state(B))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build()
        optimizer = keras.optimizers.SGD(0.5)
    two = Trainer(mirrored, optimizer, clip_norm=0.05, strategy=strategy)
    batch = next(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((x, y)))))
    states = strategy.experimental_distribute_values_from_function(
        lambda ctx: mirrored.initial_state(B // ctx.num_replicas_in_sync))
    loss2, count2, norm2, _ = two.train_step(batch, states)

    assert strategy.num_replicas_in_sync == 2
    assert float(count2) == float(count1) == B * T, (count1, count2)
    np.testing.assert_allclose(float(loss2), float(loss1), rtol=1e-5)
    np.testing.assert_allclose(float(norm2), float(norm1), rtol=1e-4)
    assert float(norm1) > 0.05  # Clipping is active, so a per-replica clip would differ.
    for a, b in zip(single.trainable_variables, mirrored.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    print("SAME STEP")
""")


def test_two_replicas_take_the_same_clipped_step_as_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=300, env=env)
    assert "SAME STEP" in result.stdout, result.stderr[-3000:]
