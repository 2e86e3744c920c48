"""The Time Machine as a TFDS dataset (`time_machine/d2l`, `d2l_full`, `raw`)."""

from rnnzoo_datasets.time_machine.time_machine_dataset_builder import Builder

__all__ = ["Builder"]
