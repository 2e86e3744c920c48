"""text8 as a TFDS dataset (`text8/full`, `course`, `prefix`, `prefix_course`)."""

from rnnzoo_datasets.text8.text8_dataset_builder import Builder

__all__ = ["Builder"]
