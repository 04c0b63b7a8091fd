"""Transfer learning (CS231n lecture 7): a trained network, a new head, the rest frozen or
fine-tuned. `transfer()` is the Python API of `trainlab transfer`; see .api for the method."""

from trainlab.lazy import exports

_API = (
    "TransferRecord",
    "TransferSetup",
    "build_transfer",
    "check_resume",
    "setup_transfer",
    "train_transfer",
    "transfer",
)
_WHERE = {
    **dict.fromkeys(_API, "api"),
    "HeadOnFeatures": "head",
    "TransferOptions": "options",
    **dict.fromkeys(("list_blocks", "load_pretrained"), "pretrained"),
}
# loaded on first use: the CLI builds `trainlab transfer`'s flags from .options without torch
__getattr__, __dir__ = exports(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})

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
