"""A study's coarse-to-fine rounds as its trials record them (the plots and the dashboard)."""

from __future__ import annotations

from optuna.study import Study

from trainlab.search.strategies.base import BOX_ATTR, ROUND_ATTR, Box, box_from_json


def boxes(study: Study) -> list[Box]:
    """Coarse-to-fine boxes per round (index = round), as recorded on the trials.

    Numeric dims map to ``(low, high)`` in config values (beta, not 1 - beta); categorical dims
    to the kept choices. Empty for studies not run by `CoarseToFineSampler`.
    """
    found: dict[int, Box] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        r = t.system_attrs.get(ROUND_ATTR)
        if r is not None and r not in found and BOX_ATTR in t.system_attrs:
            found[int(r)] = box_from_json(t.system_attrs[BOX_ATTR])
    return [found.get(r, {}) for r in range(max(found) + 1)] if found else []
