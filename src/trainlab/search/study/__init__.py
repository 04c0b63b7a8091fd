"""The study: storage, opening and resuming, the leaderboard, artifacts (what the dashboard and
the ensemble read)."""

from trainlab.search.study.opening import *  # noqa: F403
