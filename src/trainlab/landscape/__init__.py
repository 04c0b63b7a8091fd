"""Optimizer landscapes: the lecture's 2-parameter surfaces, trajectories, tables and pictures.

`run(surface, optimizers, steps, lrs, out, gif, seed)` runs the real optimizers from one start,
draws their paths over the surface's contours and returns the table (see compare.run).
"""

from trainlab.landscape.compare import run, trajectories
from trainlab.landscape.optimize import OPTIMIZERS
from trainlab.landscape.surfaces import SURFACES
from trainlab.landscape.tuning import TUNED_LRS

__all__ = ["OPTIMIZERS", "SURFACES", "TUNED_LRS", "run", "trajectories"]
