"""Search strategies as Optuna samplers, and the pruners: pure, no file or storage I/O."""

from trainlab.search.strategies.base import *  # noqa: F403
