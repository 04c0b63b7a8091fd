"""Data: embedded sets and user files, splits, preprocessing, batch augmentation."""

from trainlab.data.dataset import Normalizer, Splits, prepare
from trainlab.data.sources import EMBEDDED, USER_FORMATS, Source, load_source

__all__ = ["EMBEDDED", "USER_FORMATS", "Normalizer", "Source", "Splits", "load_source", "prepare"]
