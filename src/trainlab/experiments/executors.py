"""Where trials train: worker processes on this machine (`local`), Ray (`ray`), or in-process.

Workers only train and report; the driver owns the study. Every executor has the same shape:
`submit(job)` hands a trial to a free worker, and `step(handle, timeout)` waits for what workers
say and passes each `Event` to `handle`: per-epoch validation accuracy (``epoch``: `handle`
returns True to stop the trial, which the trainer records as ``pruned``), a finished run
(``done``) or a trial that raised or whose worker died (``error``).

The per-epoch protocol: a job without `Job.pruning` asks the driver after each epoch and waits
for the answer (a round trip). A job with one (local workers only, `LocalExecutor.judges_locally`:
the driver hands out the trial's `LocalPruning`, the pruner with the view it reads, frozen by
the lag) is judged in the worker: the worker sends the epoch's value with its own decision
(`Event.stop`) and trains on without waiting; the driver records it in the study as before. When
`handle` still returns True for such a report (the trial was judged dead by another driver on a
shared storage), the executor sends the worker an unsolicited stop, which the worker reads,
without waiting, at its next epoch's end. Messages on a worker's pipe keep their order, so a
trial's reports always reach the driver before its ``done``.

Local workers are started with the spawn context, run one torch thread each (also when there is
only one worker, so speed-ups compare like with like) and die with the driver: a thread in each
worker polls ``os.getppid()``, and a closed pipe (the driver is gone) ends a worker waiting for
its next job or for the answer to a report. Workers ignore Ctrl-C; the driver decides.

Importing this module loads neither torch nor the trainer (a worker, `run_job` and Ray's tasks
import them), so `trainlab search` can start its local workers first thing
(`LocalExecutor.start`): their imports of torch and trainlab overlap the driver's own set-up
(plan, storage, data, study), and a worker waits for its first job with both loaded.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, NoReturn

from trainlab.errors import DataWarning, UserError
from trainlab.rundir import RESULT, TRIAL_KEEPS, RunDir, atomic_write_bytes


@dataclass
class Job:
    """One training run of a search: a trial (or a re-test) with its full experiment config."""

    number: int  # Optuna trial number (re-tests: the run's index in the re-test, see retest.py)
    config: dict[str, Any]  # the experiment config, sampled values applied
    out: str  # run directory
    threads: int = 1  # torch intra-op threads of the worker
    keep: tuple[str, ...] | None = TRIAL_KEEPS  # files kept in the run directory; None: all
    report: bool = True  # send per-epoch values (pruning; re-tests: the live display only)
    # the trial's LocalPruning (trainlab.search.strategies.pruners): the worker judges each
    # epoch itself and does not wait for the driver; None: it asks the driver (a round trip)
    pruning: Any = None
    search_dirs: tuple[str, ...] = ()  # absolute folders where plugins are looked up (config's)


@dataclass
class Prepare:
    """Prepare a search's data in a worker before its first trial (`LocalExecutor.prepare`): the
    splits are kept for its trials (`_kept_data`), a data mistake or warning goes back to the
    driver, which then imports no torch itself, and a generated data set is in the cache
    before the other workers read it."""

    data: dict[str, Any]  # the base experiment's ``data:`` section (JSON form)
    search_dirs: tuple[str, ...] = ()
    number: int = -1  # not a trial


@dataclass
class Event:
    kind: str  # epoch | done | error
    number: int
    epoch: int = 0
    value: float | None = None
    result: dict[str, Any] | None = None
    message: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # Ray: the kept files, to write here
    # epoch: the worker's own decision (True: it stops the trial), taken with the job's
    # LocalPruning; nothing is answered. None: the worker waits for `handle`'s answer
    stop: bool | None = None


Handler = Callable[[Event], bool | None]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# --------------------------------------------------------------------------- the work itself


def run_job(
    job: Job | Prepare,
    report: Callable[[int, float | None], bool],
    kept: dict[str, Any] | None = None,
) -> Event:
    """Train `job` in this process; `report(epoch, val_accuracy)` returns True to stop (a
    `Prepare` only prepares the data into `kept`: `_prepared`).

    Returns a ``done`` event with the result dict, or an ``error`` event with the message
    (a user's mistake in one line, anything else with its traceback). `kept`: a dict that
    lives across the jobs of this process, where the data is kept between trials
    (`_kept_splits`).
    """

    if isinstance(job, Prepare):
        return _prepared(job, kept if kept is not None else {})

    import torch

    from trainlab.engine import Callback  # heavy: torch, in the worker only
    from trainlab.experiments.api import train  # heavy: torch, in the worker only

    class _Reporter(Callback):
        def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> bool:
            return bool(job.report and report(record["epoch"], record.get("val_accuracy")))

    torch.set_num_threads(job.threads)
    try:
        result = train(
            job.config,
            out=job.out,
            callbacks=[_Reporter()],
            splits=None if kept is None else _kept_splits(job, kept),
            curves=job.keep is None,
            search_dirs=job.search_dirs,
            verbose=False,  # the search or comparison running it shows the progress
        )
    except UserError as exc:
        return Event("error", job.number, message=str(exc))
    except Exception:
        return Event("error", job.number, message=traceback.format_exc(limit=-4).strip())
    RunDir(job.out).prune(job.keep)
    return Event("done", job.number, result=result.to_dict())


def _kept_splits(job: Job, kept: dict[str, Any]) -> Any:
    """The prepared splits of the job's ``data:`` section, prepared once per worker and kept
    for its next trials while that section (and the plugin folders) stays the same: the data
    is a function of them (seeded by data.seed), so a trial trains on the same tensors as if
    it had prepared them itself. Only in-memory splits are kept (streamed ones read their
    files as they go); None: the trial prepares its own."""
    return _kept_data(job.config["data"], job.search_dirs, kept)


def _kept_data(data: dict[str, Any], search_dirs: tuple[str, ...], kept: dict[str, Any]) -> Any:
    """`_kept_splits` of a ``data:`` section (JSON form) and plugin folders."""
    from trainlab.config import DataConfig  # pydantic: loaded after the workers started
    from trainlab.data import Splits, prepare  # heavy: torch, in the worker only

    key = json.dumps([data, search_dirs], sort_keys=True, default=str)
    if kept.get("data_key") != key:
        kept.pop("splits", None)  # one data set at a time: the memory of one
        splits = prepare(DataConfig.model_validate(data), search_dirs=search_dirs)
        kept["data_key"], kept["splits"] = key, splits if isinstance(splits, Splits) else None
    return kept["splits"]


def _prepared(job: Prepare, kept: dict[str, Any]) -> Event:
    """Prepare `job`'s data into `kept`: a ``done`` event whose result lists the data's
    warnings (``{"warnings": [...]}``, for the driver to show once), or an ``error`` event: a
    data mistake's one line (result ``{"user": True}``), else the traceback."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            _kept_data(job.data, tuple(job.search_dirs), kept)
        except UserError as exc:
            return Event("error", job.number, message=str(exc), result={"user": True})
        except Exception:
            return Event("error", job.number, message=traceback.format_exc(limit=-4).strip())
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for w in caught:  # any other warning is shown here, as it would have been
        if not issubclass(w.category, DataWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return Event("done", job.number, result={"warnings": list(dict.fromkeys(said))})


# --------------------------------------------------------------------------- in-process


class InlineExecutor:
    """Runs each trial in the driver's own process, one at a time (Python API, debugging)."""

    slots = 1

    def __init__(self) -> None:
        self._queue: list[Job] = []

    def free(self) -> int:
        return self.slots - len(self._queue)

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def step(self, handle: Handler, timeout: float = 0.5) -> None:
        if not self._queue:
            return
        job = self._queue[0]
        event = run_job(
            job, lambda epoch, value: bool(handle(Event("epoch", job.number, epoch, value)))
        )
        self._queue.pop(0)
        handle(event)

    def close(self, kill: bool = False) -> None:
        self._queue.clear()


# --------------------------------------------------------------------------- local processes


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)  # the driver is gone: so is this worker (no orphans)
        time.sleep(0.2)


def _worker_main(conn: Connection, parent: int, threads: int) -> None:
    """A local worker: take jobs from the pipe until it closes; report epochs, send results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # stdout is the command's output (--json): what a
        os.dup2(2, 1)  # trial prints (the user's plugin, C code) goes to stderr
    # the driver loaded the same data and showed its warnings once, as one line each
    warnings.simplefilter("ignore", DataWarning)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    # while the driver prepares, load what every trial needs: torch and the trainer (not
    # torch._dynamo: our optimizers do without it unless a run compiles, optim/plain.py, and on
    # few cores its ~1 s of CPU would slow the other workers' start). Imports only: nothing
    # numerics-relevant is built before a job's own seed is set.
    import torch

    import trainlab.experiments.api  # noqa: F401  (the trainer, its callbacks and data)

    torch.set_num_threads(threads)
    try:
        conn.send(("ready",))
    except OSError:
        return

    kept: dict[str, Any] = {}  # what this worker keeps between its trials (the data)
    while True:
        try:
            job = _next_job(conn)
        except (EOFError, OSError):
            job = None
        if job is None:
            _exit_now()
        pruning = getattr(job, "pruning", None)  # a Prepare (the data) reports nothing
        report = _ask_driver(conn) if pruning is None else _judge_here(conn, job)
        event = run_job(job, report, kept)
        try:
            conn.send(("event", event))
        except (BrokenPipeError, OSError):
            _exit_now()


def _stale_stop(message: Any) -> bool:
    """An unsolicited ("stop", number) that arrived after its trial had ended."""
    return isinstance(message, tuple) and message[:1] == ("stop",)


def _next_job(conn: Connection) -> Job | None:
    """The next job (None: end), past any stop sent for a trial that has ended meanwhile."""
    while _stale_stop(message := conn.recv()):
        pass
    return message


def _ask_driver(conn: Connection) -> Callable[[int, float | None], bool]:
    """A job's reports as round trips: send the epoch's value, wait for the driver's answer."""

    def ask(epoch: int, value: float | None) -> bool:
        try:
            conn.send(("epoch", epoch, value))
            while _stale_stop(answer := conn.recv()):
                pass
            return bool(answer)
        except (EOFError, OSError):
            os._exit(3)

    return ask


def _judge_here(conn: Connection, job: Job) -> Callable[[int, float | None], bool]:
    """A job's reports judged here by its `LocalPruning`: send the value with the decision and
    train on; stop also when the driver has sent ("stop", number) for this trial."""
    pruning, stop_message = job.pruning, ("stop", job.number)

    def judge(epoch: int, value: float | None) -> bool:
        stop = pruning.report(epoch, value)
        try:
            conn.send(("report", epoch, value, stop))
            while conn.poll(0):
                stop = conn.recv() == stop_message or stop
        except (EOFError, OSError):
            os._exit(3)
        return stop

    return judge


def _exit_now() -> NoReturn:
    """End a worker as multiprocessing's own bootstrap does (its finalizers: semaphores, child
    processes), without the interpreter's shutdown, which takes about 2 s with torch loaded."""
    multiprocessing.util._exit_function()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Worker:
    def __init__(self, ctx: Any, threads: int) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), threads),
            daemon=True,
            name="trainlab-search-worker",
        )
        # spawn re-runs the driver's __main__ in each worker (a user's script, stdin, ...);
        # workers need only this module, so hide __main__ while the process is started.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            self.process.start()
        finally:
            sys.modules["__main__"] = main
        child.close()
        self.job: Job | None = None
        self.ready = False  # its ("ready",) message was read


class LocalExecutor:
    """Up to `workers` worker processes on this machine (spawn), one torch thread each by
    default; a worker is started when a job is submitted and no started one is idle, or ahead
    of any job with `start` (they load torch and the trainer meanwhile)."""

    judges_locally = True  # a job's LocalPruning runs in its worker (module docstring)

    def __init__(self, workers: int, threads: int = 1) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.slots = workers
        self.threads = threads
        self._workers: list[_Worker] = []
        self._preparing: _Worker | None = None  # the worker preparing the data (`prepare`)

    def start(self, count: int | None = None) -> LocalExecutor:
        """Start idle workers now, up to `count` (default: every slot) started in all; returns
        self. The caller closes the executor however what follows ends (`close(kill=True)`)."""
        want = self.slots if count is None else min(count, self.slots)
        while len(self._workers) < want:
            self._workers.append(_Worker(self._ctx, self.threads))
        return self

    def started(self) -> int:
        """How many worker processes are started (busy or idle)."""
        return len(self._workers)

    def limit(self, workers: int) -> None:
        """At most `workers` slots from now on: idle workers above that are killed (they never
        ran a job: a search whose runs left turned out fewer than the workers started ahead)."""
        self.slots = workers
        idle = [w for w in self._workers if w.job is None]
        extra = max(0, len(self._workers) - workers)
        surplus = idle[len(idle) - extra :] if extra else []  # the last started: least ready
        for w in surplus:
            self._workers.remove(w)
        _end(surplus, kill=True)

    def free(self) -> int:
        return self.slots - sum(1 for w in self._workers if w.job is not None)

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until every started worker has imported torch and trainlab (so timings of the
        search itself leave out the start-up); a worker that died is left to `step` to report."""
        deadline = time.monotonic() + timeout
        for w in self._workers:
            while not w.ready and w.process.is_alive() and time.monotonic() < deadline:
                if w.conn.poll(0.2):
                    try:
                        w.conn.recv()  # ("ready",): always a worker's first message
                    except (EOFError, OSError):
                        pass
                    w.ready = True

    def prepare(self, data: dict[str, Any], search_dirs: tuple[str, ...] = ()) -> None:
        """Have the first worker (started here if none is) prepare the search's data before its
        first trial, while the driver goes on; `prepared` waits for the outcome. Jobs are
        submitted after that (the worker is busy until then). Once per executor."""
        if self._preparing is not None:
            return
        if not self._workers:
            self.start(1)
        worker = self._workers[0]
        worker.job = Prepare(data, tuple(search_dirs))  # type: ignore[assignment]
        worker.conn.send(worker.job)
        self._preparing = worker

    def prepared(self) -> Event | None:
        """The outcome of `prepare` (`_prepared`'s event; None when nothing was asked or the
        worker died meanwhile: its data is then prepared by each trial, whose error says what
        went wrong). Reads the worker's ``ready`` on the way."""
        w, self._preparing = self._preparing, None
        if w is None or w.job is None:
            return None
        while True:
            if w.conn.poll(0.2):
                try:
                    message = w.conn.recv()
                except (EOFError, OSError):  # it died: `submit` replaces it
                    w.job = None
                    return None
                if message[0] == "ready":
                    w.ready = True
                elif message[0] == "event":
                    w.job = None
                    return message[1]
            elif not w.process.is_alive():
                w.job = None
                return None

    def submit(self, job: Job) -> None:
        for dead in [w for w in self._workers if w.job is None and not w.process.is_alive()]:
            dead.conn.close()
            self._workers.remove(dead)
        worker = next((w for w in self._workers if w.job is None), None)
        if worker is None:
            if len(self._workers) >= self.slots:
                raise RuntimeError("submit: no free worker slot (check free() first)")
            worker = _Worker(self._ctx, self.threads)
            self._workers.append(worker)
        job.threads = self.threads
        worker.job = job
        worker.conn.send(job)

    def step(self, handle: Handler, timeout: float = 0.5) -> None:
        busy = [w for w in self._workers if w.job is not None]
        if not busy:
            return
        waitables: dict[Any, _Worker] = {}
        for w in busy:
            waitables[w.conn] = w
            waitables[w.process.sentinel] = w
        for ready in wait(list(waitables), timeout):
            w = waitables[ready]
            if w.job is None:
                continue
            if ready is w.conn:
                _read(w, handle)
            elif not w.process.is_alive():
                job, w.job = w.job, None
                code = w.process.exitcode
                w.conn.close()
                self._workers.remove(w)  # the next job that needs a worker starts a new one
                handle(Event("error", job.number, message=f"worker process died (exit {code})"))

    def close(self, kill: bool = False) -> None:
        workers, self._workers = self._workers, []
        _end(workers, kill)


def _read(w: _Worker, handle: Handler) -> None:
    """Pass on what a busy worker has sent so far (reports judged in the worker come in bursts:
    it does not wait for them), up to its trial's end."""
    while w.job is not None:
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            return  # the sentinel says why
        kind, number = message[0], w.job.number
        if kind == "ready":
            w.ready = True
        elif kind == "epoch":  # a round trip: the worker waits for the answer
            w.conn.send(bool(handle(Event("epoch", number, message[1], message[2]))))
        elif kind == "report":  # judged in the worker; True here: stop it all the same
            if handle(Event("epoch", number, message[1], message[2], stop=message[3])):
                with contextlib.suppress(OSError):
                    w.conn.send(("stop", number))
        else:
            w.job = None
            handle(message[1])
        if not w.conn.poll(0):
            return


def _end(workers: list[_Worker], kill: bool) -> None:
    """End worker processes and wait for them: busy ones (or all, `kill`) are killed, idle ones
    told to stop (None on their pipe), and killed if they have not exited within 5 s."""
    for w in workers:
        if kill or w.job is not None:
            w.process.kill()
        else:
            try:
                w.conn.send(None)
            except OSError:
                pass
    for w in workers:
        w.process.join(timeout=5)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        w.conn.close()


# --------------------------------------------------------------------------- ray


def _ray_run(job: Job, inbox: Any, replies: Any, attempt: int = 0) -> Event:
    """A Ray task: train in a temporary directory on whichever node runs it; send back results
    and the kept files (the driver writes them into the study directory, so no shared file
    system is needed). Epoch reports carry the `attempt`, so the driver can tell a re-run's
    messages from those a lost attempt left behind."""
    out = Path(job.out)
    with tempfile.TemporaryDirectory(prefix="trainlab-trial-") as tmp:
        local = replace(job, out=str(Path(tmp) / out.name))  # every other field as sent

        def ask(epoch: int, value: float | None) -> bool:
            inbox.put((job.number, attempt, epoch, value))
            return bool(replies.get(timeout=3600))

        with warnings.catch_warnings():  # the driver showed the data's warnings once
            warnings.simplefilter("ignore", DataWarning)
            event = run_job(local, ask)
        run_dir = Path(local.out)
        if run_dir.is_dir():
            event.files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        if event.result is not None:
            event.result["run_dir"] = str(out)
    return event


def _lost_worker(ray: Any, exc: BaseException) -> bool:
    """Whether a task failed because its worker process or node went away (the trial itself
    did not fail: run_job turns every exception of the training into an ``error`` event)."""
    errors = ray.exceptions
    return isinstance(
        exc,
        errors.NodeDiedError
        | errors.WorkerCrashedError
        | errors.LocalRayletDiedError
        | errors.ObjectLostError
        | errors.OutOfMemoryError,
    )


def _ray_messages_to_stderr(ray: Any) -> None:
    """Ray's driver prints the cluster's error messages (a node marked dead, a worker killed)
    to stdout; here stdout is the command's output (``--json``), so they go to stderr."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "trainlab_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.trainlab_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class _RayTrial:
    job: Job
    slot: int  # which reply queue the task reads
    attempt: int = 0
    reported: int = 0  # the last epoch passed to the driver (a re-run repeats the earlier ones)


class RayExecutor:
    """Trials as Ray tasks (one CPU each) on a Ray cluster: `address`, or a local one started
    small (2 CPUs unless told, no dashboard, a small object store, usage stats off).

    The queues that carry epoch reports and the driver's answers are actors pinned to the
    driver's node with no CPU, so losing any other node loses no queue. A task whose worker or
    node died (NodeDiedError, WorkerCrashedError, ...) is submitted again, up to `retries` times,
    with a fresh reply queue; the re-run trains the same config and seed from the start, its
    epochs up to the last one already reported are answered "go on" without reaching the driver
    (the pruner saw them once), and a note says so. After `retries` re-runs the trial fails
    (``error``), as any crashed trial does.
    """

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        threads: int = 1,
        num_cpus: int | None = None,
        object_store_memory: int = 100 * 1024 * 1024,
        retries: int = 2,
        note: Callable[[str], None] | None = None,
    ) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError:
            raise UserError(
                "--executor: ray is not installed; pip install 'trainlab[ray]' or use "
                "--executor local"
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs.update(
                    num_cpus=num_cpus or max(2, workers), object_store_memory=object_store_memory
                )
            _ray_messages_to_stderr(ray)
            try:
                ray.init(**kwargs)
            except Exception as exc:
                where = address or "a local Ray"
                hint = ""
                if address and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                    # Ray says only "failed to connect" when the cluster wants a token
                    hint = (
                        "; if the cluster uses token authentication, set RAY_AUTH_MODE=token "
                        "and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) here"
                    )
                raise UserError(
                    f"--ray-address: cannot connect to {where} ({_first_line(exc)}){hint}"
                ) from None
            self._started = True
        self.slots = workers
        self.threads = threads
        self.retries = retries
        self._note = note or (lambda message: print(f"note: {message}", file=sys.stderr))
        self._task = ray.remote(num_cpus=1, max_retries=0)(_ray_run)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._queue_options = {"num_cpus": 0, "scheduling_strategy": here}
        self._inbox = self._queue()
        self._replies = [self._queue() for _ in range(workers)]
        self._running: dict[Any, _RayTrial] = {}  # ref -> trial

    def _queue(self) -> Any:
        from ray.util.queue import Queue

        return Queue(actor_options=self._queue_options)

    def free(self) -> int:
        return self.slots - len(self._running)

    def submit(self, job: Job) -> None:
        used = {t.slot for t in self._running.values()}
        slot = next(i for i in range(self.slots) if i not in used)
        job.threads = self.threads
        self._start(_RayTrial(job, slot))

    def _start(self, trial: _RayTrial) -> None:
        ref = self._task.remote(trial.job, self._inbox, self._replies[trial.slot], trial.attempt)
        self._running[ref] = trial

    def _retry(self, trial: _RayTrial, exc: BaseException) -> None:
        """Run a trial whose task lost its worker again, with a reply queue of its own (the
        old one may hold an answer the lost attempt never read)."""
        self._ray.kill(self._replies[trial.slot].actor, no_restart=True)
        self._replies[trial.slot] = self._queue()
        trial.attempt += 1
        self._note(
            f"trial {trial.job.number} lost its Ray worker ({type(exc).__name__}): re-running it "
            f"(attempt {trial.attempt + 1} of {self.retries + 1})"
        )
        self._start(trial)

    def step(self, handle: Handler, timeout: float = 0.5) -> None:
        if not self._running:
            return
        ray = self._ray
        by_number = {t.job.number: t for t in self._running.values()}
        try:
            first = self._inbox.get(timeout=timeout)
            messages = [first] + self._inbox.get_nowait_batch(self._inbox.qsize())
        except Exception:  # ray.util.queue.Empty
            messages = []
        for number, attempt, epoch, value in messages:
            trial = by_number.get(number)
            if trial is None or attempt != trial.attempt:
                continue  # left by an attempt that lost its worker: nobody waits for the answer
            stop = False
            if epoch > trial.reported:
                trial.reported = epoch
                stop = bool(handle(Event("epoch", number, epoch, value)))
            self._replies[trial.slot].put(stop)
        done, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        for ref in done:
            trial = self._running.pop(ref)
            job = trial.job
            try:
                event = ray.get(ref)
            except Exception as exc:
                if _lost_worker(ray, exc) and trial.attempt < self.retries:
                    self._retry(trial, exc)
                    continue
                event = Event(
                    "error",
                    job.number,
                    message=f"ray task failed after {trial.attempt + 1} attempt(s): "
                    f"{type(exc).__name__}: {_first_line(exc)}",
                )
            if event.files:
                out = Path(job.out)
                out.mkdir(parents=True, exist_ok=True)
                for name, data in event.files.items():
                    atomic_write_bytes(out / name, data)
                if event.result is not None:  # point result.json at the study directory
                    RunDir(out).write_json(RESULT, event.result)
            handle(event)

    def close(self, kill: bool = False) -> None:
        ray = self._ray
        for ref in list(self._running):
            ray.cancel(ref, force=True)
        self._running.clear()
        if self._started:
            ray.shutdown()


def takes_over(kind: str, started: LocalExecutor | None, threads: int) -> bool:
    """Whether `make_executor` uses the local workers `started` ahead for an executor of
    `kind` whose workers run `threads` torch threads each."""
    return kind == "local" and started is not None and started.threads == threads


def make_executor(
    kind: str,
    workers: int,
    *,
    address: str | None = None,
    threads: int = 1,
    note: Callable[[str], None] | None = None,
    started: LocalExecutor | None = None,
) -> InlineExecutor | LocalExecutor | RayExecutor:
    """The executor of ``search.executor`` (``inline`` runs in the driver: Python API only);
    `note` gets one-line remarks for the user (a Ray trial re-run after its node died).
    `started`: local workers started ahead (`LocalExecutor.start`), used for a local executor
    of as many threads, cut to `workers`; the caller ends them when another is returned."""
    if takes_over(kind, started, threads):
        assert started is not None
        started.limit(workers)
        return started
    if kind == "ray":
        return RayExecutor(workers, address=address, threads=threads, note=note)
    if kind == "inline":
        return InlineExecutor()
    return LocalExecutor(workers, threads=threads)
