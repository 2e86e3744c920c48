"""End to end: a real training run (rnnzoo.training on the Jay Chou lyrics), exported, used."""

import json

import pytest

from rnnzoo import generate
from rnnzoo.export.metadata import ExportMetadata
from rnnzoo.export.runtime import TFLiteStepModel
from rnnzoo.tasks.char_lm import CharLMConfig, train
from rnnzoo.zoo import export_run


@pytest.mark.slow
def test_trained_run_exports_what_training_measured(tmp_path, source_dir, tfds_dir):
    config = CharLMConfig(model="lstm", num_hiddens=32, num_epochs=2, pred_period=2, lr=1.0,
                         clip_norm=1.0, init="keras", pred_len=30)
    record = train(config, tmp_path / "run", source_dir=source_dir, tfds_dir=tfds_dir,
                   log=lambda *_: None).record
    # The validation perplexity recomputed from the export's rebuilt model is training's own:
    # every weight came back from the checkpoint (recurrent ones included).
    result = export_run(tmp_path / "run", compute_val_perplexity=True, source_dir=source_dir,
                        tfds_dir=tfds_dir, log=lambda *_: None)
    assert result.metadata.val_perplexity == pytest.approx(record["val_perplexity"], rel=1e-5)
    plain = export_run(tmp_path / "run", tmp_path / "plain", log=lambda *_: None)
    assert plain.metadata.val_perplexity == pytest.approx(record["val_perplexity"], rel=1e-12)
    assert plain.metadata.val_perplexity_source == "metrics.jsonl, epoch 2"
    # Greedy samples written by training come out of both exported files unchanged.
    samples = (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8")
    last = samples[samples.rindex("epoch 2\n") + len("epoch 2\n"):]
    want = last[:len(config.prefixes[0]) + config.pred_len]
    assert want.startswith(config.prefixes[0])
    path = result.path
    assert generate.generate_saved_model(path / "saved_model", [config.prefixes[0]],
                                         config.pred_len) == [want]
    meta = ExportMetadata.load(path / "model.json")
    assert generate.generate_tflite(TFLiteStepModel(path / "model.tflite"), meta,
                                    config.prefixes[0], config.pred_len) == want
    assert json.loads((path / "model.json").read_text())["corpus"] == config.corpus
