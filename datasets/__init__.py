"""rnnzoo's corpora as TFDS datasets (installed as the package `rnnzoo_datasets`).

Importing a corpus sub-package (`rnnzoo_datasets.time_machine`, `.jaychou_lyrics`,
`.text8`) registers its TFDS builder; `rnnzoo.data.corpora` imports them all. TFDS's
own `tiny_shakespeare` is used as it is, fed offline by `tiny_shakespeare_offline`.

This package sits below `rnnzoo` and never imports it (tests/datasets/test_layering.py
checks): its `CorpusError` is `rnnzoo_datasets.errors.CorpusError`, which
`rnnzoo.data.errors` re-exports.
"""
