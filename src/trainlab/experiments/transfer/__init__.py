"""Transfer learning (CS231n lecture 7): a trained network, a new head, the rest frozen or
fine-tuned. `transfer()` is the Python API of `trainlab transfer`; see .api for the method."""

from trainlab.experiments.transfer.api import (
    TransferRecord,
    TransferSetup,
    build_transfer,
    check_resume,
    setup_transfer,
    train_transfer,
    transfer,
)
from trainlab.experiments.transfer.head import HeadOnFeatures
from trainlab.experiments.transfer.options import TransferOptions
from trainlab.experiments.transfer.pretrained import list_blocks, load_pretrained

__all__ = [
    "HeadOnFeatures",
    "TransferOptions",
    "TransferRecord",
    "TransferSetup",
    "build_transfer",
    "check_resume",
    "list_blocks",
    "load_pretrained",
    "setup_transfer",
    "train_transfer",
    "transfer",
]
