"""A trial judged in its worker (Job.pruning): the worker stops it on its own decision without
waiting for the driver, and a stop the driver sends (the trial judged dead elsewhere) ends it
at a later epoch; stale stops never reach the next trial."""

import datetime
import math
import time

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.config import load_config
from trainlab.experiments.executors import Event, Job, LocalExecutor
from trainlab.search.strategies.pruners import FrozenView, LocalPruning


def _config(epochs):
    overrides = ["data.name=spirals", "model.width=8", f"train.epochs={epochs}"]
    return load_config(None, overrides).model_dump(mode="json")


def _pruning(pruner, number, last_step):
    trial = FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )
    return LocalPruning(pruner, FrozenView(StudyDirection.MAXIMIZE, []), trial, last_step)


def _run(executor, job, handle, timeout=120):
    """Submit `job` and step until it ends; its events."""
    events: list[Event] = []

    def record(event):
        events.append(event)
        return handle(event)

    executor.submit(job)
    deadline = time.monotonic() + timeout
    while not any(e.kind != "epoch" for e in events) and time.monotonic() < deadline:
        executor.step(record, 0.5)
    assert events and events[-1].kind == "done", events[-1:]
    return events


def test_a_trial_judged_in_its_worker_stops_there_and_a_drivers_stop_ends_it(tmp_path):
    executor = LocalExecutor(1)
    try:
        # the worker's own decision: a threshold no value reaches prunes at epoch 1; the
        # driver never answers (a worker waiting for it would train all 50 epochs)
        prunes = optuna.pruners.ThresholdPruner(lower=2.0)
        job = Job(0, _config(50), str(tmp_path / "t0"), pruning=_pruning(prunes, 0, 50))
        events = _run(executor, job, lambda event: None)
        assert [(e.epoch, e.stop) for e in events[:-1]] == [(1, True)]
        assert events[-1].result["stopped_reason"] == "pruned"
        assert events[-1].result["epochs"] == 1

        # judged dead by another driver: `handle` says stop from epoch 2 on; the worker reads
        # the stop at a later epoch's end, without waiting for it
        job = Job(1, _config(400), str(tmp_path / "t1"), pruning=_pruning(None, 1, 400))
        job.pruning.pruner = optuna.pruners.NopPruner()
        events = _run(executor, job, lambda event: event.kind == "epoch" and event.epoch >= 2)
        reports = [e for e in events if e.kind == "epoch"]
        assert all(e.stop is False for e in reports)  # its own pruner never stops it
        assert 2 <= len(reports) < 400 and events[-1].result["stopped_reason"] == "pruned"

        # the stops sent after it had stopped are stale: the next trial (a round trip) and
        # the one after it (judged locally, never pruned) run all their epochs
        job = Job(2, _config(3), str(tmp_path / "t2"))
        events = _run(executor, job, lambda event: False)
        assert [e.epoch for e in events[:-1]] == [1, 2, 3] and events[-1].result["epochs"] == 3
        job = Job(3, _config(3), str(tmp_path / "t3"), pruning=_pruning(None, 3, math.inf))
        job.pruning.pruner = optuna.pruners.NopPruner()
        events = _run(executor, job, lambda event: False)
        assert [e.epoch for e in events[:-1]] == [1, 2, 3] and events[-1].result["epochs"] == 3
    finally:
        executor.close()
