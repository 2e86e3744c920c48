"""Jay Chou lyrics as a TFDS dataset (`jaychou_lyrics/d2l_zh`, `full`)."""

from rnnzoo_datasets.jaychou_lyrics.jaychou_lyrics_dataset_builder import Builder

__all__ = ["Builder"]
