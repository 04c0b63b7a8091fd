"""The study: its storage, opening and resuming it, reading it back (the leaderboard), the rounds
its trials record, and its trials' files in the artifact store: what the driver writes and the
dashboard, the ensemble and compare read.

The driver is the only process that writes the Optuna study (one writer: SQLite is never written
by several processes at once). A study remembers what it searched (the space, the strategy and
the experiment config) as study user attrs, so `--resume` with something changed is refused
before anything is touched. The study directory (`runs/search/<study>/`) holds:

    trials/<NNNN>/   one run directory per trial (best.pt, result.json, config.yaml, metrics.jsonl)
    retest/<NNNN>-seed<S>/  re-runs of the best K trials with R new seeds (`--retest K`)
    params.png       validation accuracy against each hyperparameter (rounds coloured, boxes)
    curves.png       every trial's validation curve (the caviar view)
    best.yaml        the best trial's full config, taken by `trainlab train` as is
    leaderboard.csv  rank, value, parameters (config values), epochs, seconds, state
    .lock            held (flock) by the running driver

Modules: `storage` (storages, the lock), `outcome` (a finished run -> the trial's record),
`opening` (create, resume, join, find), `leaderboard` (reading back, the budget used), `rounds`
(coarse-to-fine boxes), `artifacts` (trials' files across machines), `urls` (URLs as shown),
`plots` (the two pictures, drawn with Pillow: import it directly). The names of the first five
are re-exported here (``from trainlab.search import study as studies; studies.open_storage(...)``).
"""

from trainlab.search.study.leaderboard import (
    best_trial,
    counted,
    counts,
    finished,
    last_value,
    leaderboard,
    ranked_trials,
    searched_space,
    state_name,
    top_run_dirs,
    trial_params,
    write_leaderboard,
)
from trainlab.search.study.opening import (
    DIR_ATTR,
    SIGNATURE_ATTR,
    Opened,
    find_study,
    finished_result,
    open_study,
    signature,
    trial_dir,
)
from trainlab.search.study.outcome import (
    INTERRUPTED,
    OUTCOME,
    Outcome,
    counts_toward_budget,
    outcome,
)
from trainlab.search.study.rounds import boxes
from trainlab.search.study.storage import (
    DEFAULT_STORAGE,
    SHARED_SCHEMES,
    NoLock,
    StudyLock,
    WalConnection,
    close_storage,
    grace_period,
    is_shared,
    journal_path,
    open_storage,
    optuna_info_hidden,
)

__all__ = [
    "DEFAULT_STORAGE",
    "DIR_ATTR",
    "INTERRUPTED",
    "OUTCOME",
    "SHARED_SCHEMES",
    "SIGNATURE_ATTR",
    "NoLock",
    "Opened",
    "Outcome",
    "StudyLock",
    "WalConnection",
    "best_trial",
    "boxes",
    "close_storage",
    "counted",
    "counts",
    "counts_toward_budget",
    "find_study",
    "finished",
    "finished_result",
    "grace_period",
    "is_shared",
    "journal_path",
    "last_value",
    "leaderboard",
    "open_storage",
    "open_study",
    "optuna_info_hidden",
    "outcome",
    "ranked_trials",
    "searched_space",
    "signature",
    "state_name",
    "top_run_dirs",
    "trial_dir",
    "trial_params",
    "write_leaderboard",
]
