"""benchmarks/end_to_end.py and benchmarks/d2l_torch.py: the same runs on both sides, the
epoch aggregation and the table (no training here; PyTorch is only needed by the last test)."""

import io
import os

import d2l_torch
import end_to_end
import pytest

from rnnzoo import zoo
from rnnzoo.data.lm_pipeline import num_batches

DATA_DIR = os.environ.get("RNNZOO_DATA_DIR", "")


@pytest.mark.parametrize("name", list(end_to_end.RUNS))
def test_d2l_script_runs_the_presets_settings(name):
    run = end_to_end.RUNS[name]
    flags = dict(f.removeprefix("--").split("=") for f in run.flags)
    model = flags.pop("model", None)  # the same --model for both programs
    config = zoo.make_config(model=model, preset=run.preset,
                             **{k: int(v) for k, v in flags.items()})
    ours = d2l_torch.PRESETS[run.preset]
    layers = int(flags.get("num_layers", ours["num_layers"]))
    assert (config.batch_size, config.num_steps, config.num_hiddens) == (
        d2l_torch.BATCH_SIZE, d2l_torch.NUM_STEPS, d2l_torch.NUM_HIDDENS)
    assert (config.cell, config.num_layers, config.lr, config.clip_norm) == (
        model or ours["cell"], layers, ours["lr"], ours["clip"])
    assert config.sampler == "consecutive" and config.optimizer == "sgd"
    assert config.sampler_edition == (1 if ours["corpus"] == "jaychou" else 2)
    assert config.embedding_dim == 0  # one-hot input, as d2l's RNNModel


@pytest.mark.skipif(not os.path.isdir(DATA_DIR), reason="needs $RNNZOO_DATA_DIR")
@pytest.mark.parametrize("corpus, vocab_size", [("jaychou", 1027), ("time_machine", 28)])
def test_d2l_corpora_have_d2ls_sizes(corpus, vocab_size):
    ids, v = d2l_torch.load_corpus(corpus, DATA_DIR)
    assert (len(ids), v) == (10000, vocab_size)
    assert 0 <= min(ids) and max(ids) < v


def test_commands_name_the_preset_flags_and_epochs(tmp_path):
    run = end_to_end.RUNS["d2l_time_machine_lstm"]
    assert end_to_end.rnnzoo_command("py", "/c", run, 7, tmp_path) == [
        "py", "/c/train.py", "--preset=d2l_time_machine_lstm2", "--num_layers=1",
        "--num_epochs=7", f"--workdir={tmp_path}"]
    cmd = end_to_end.torch_command("py", run, 7, 2)
    assert cmd[1].endswith("benchmarks/d2l_torch.py")
    assert cmd[2:] == ["--preset=d2l_time_machine_lstm2", "--num_layers=1", "--num_epochs=7",
                       "--threads=2"]
    gru = end_to_end.RUNS["d2l_time_machine_gru"]  # the same --model for both programs
    assert "--model=gru" in end_to_end.rnnzoo_command("py", "/c", gru, 7, tmp_path)
    assert "--model=gru" in end_to_end.torch_command("py", gru, 7, 2)


def test_aggregate_skips_the_first_epochs_of_every_round():
    rounds = [[{"epoch": e, "tokens_per_sec": t} for e, t in enumerate([1.0, 50.0, 10, 12, 14], 1)],
              [{"epoch": e, "tokens_per_sec": t} for e, t in enumerate([2.0, 60.0, 20, 22, 24], 1)]]
    got = end_to_end.aggregate(rounds, [5.0, 7.0, 6.0], skip=2)
    assert got == {"tokens_per_sec": 17.0, "min": 12, "max": 22, "rounds": 2, "epochs_timed": 6,
                   "wall_seconds": 6.0}
    with pytest.raises(ValueError, match="raise --epochs"):
        end_to_end.aggregate(rounds, [1.0], skip=5)


def test_table_and_targets():
    base = {"run": "d2l_time_machine_gru", "label": "GRU, Time Machine, V=28", "min": 1.0,
            "max": 2.0}
    records = [dict(base, impl="rnnzoo", tokens_per_sec=2600.0, wall_seconds=30.0),
               dict(base, impl="torch", tokens_per_sec=2000.0, wall_seconds=20.0)]
    lines = end_to_end.table(records).splitlines()
    assert lines[0] == ("| run | rnnzoo tok/s | torch tok/s | rnnzoo/torch | rnnzoo command, s "
                        "| torch command, s |")
    assert lines[2] == ("| GRU, Time Machine, V=28 | 2,600 (1-2) | 2,000 (1-2) | 1.30x | 30.0 "
                        "| 20.0 |")
    assert end_to_end.target_lines(records) == (
        "- d2l_time_machine_gru: 1.30x PyTorch end to end (target >= 1.3x): met")
    records[0]["tokens_per_sec"] = 2500.0
    assert "NOT met" in end_to_end.target_lines(records)


@pytest.mark.skipif(not os.path.isdir(DATA_DIR), reason="needs $RNNZOO_DATA_DIR")
def test_d2l_torch_trains_an_epoch_of_the_time_machine():
    pytest.importorskip("torch")
    out = io.StringIO()
    (record,) = d2l_torch.train("d2l_time_machine_lstm2", num_epochs=1, num_layers=1, threads=1,
                                data_dir=DATA_DIR, out=out)
    # d2l's sequential sampler: as many batches as rnnzoo's edition-2 consecutive sampler.
    assert record["tokens"] % (32 * 35) == 0
    assert record["tokens"] // (32 * 35) in range(
        num_batches(10000, batch_size=32, num_steps=35, sampler="consecutive", edition=2) - 1,
        num_batches(10000, batch_size=32, num_steps=35, sampler="consecutive", edition=2) + 1)
    assert 1 < record["perplexity"] < 28 and record["seconds"] > 0
    assert out.getvalue().count("\n") == 1
