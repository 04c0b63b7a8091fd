"""Data: embedded sets, user files and plugins, splits (in memory or streamed), preprocessing,
batch augmentation."""

from trainlab.data.dataset import AnySplits, Normalizer, Splits, prepare
from trainlab.data.sources import EMBEDDED, USER_FORMATS, Source, load_source
from trainlab.data.streaming import StreamedSplits, StreamSplit, TensorSplit

__all__ = [
    "EMBEDDED",
    "USER_FORMATS",
    "AnySplits",
    "Normalizer",
    "Source",
    "Splits",
    "StreamSplit",
    "StreamedSplits",
    "TensorSplit",
    "load_source",
    "prepare",
]
