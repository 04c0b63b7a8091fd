"""`trainlab search --executor ray --ray-address` on a real multi-process Ray cluster.

The fixture starts a head (`ray start --head`, 1 CPU) and one worker node (`ray start --address`,
1 CPU, its own raylet) as separate process sessions on this machine, with token authentication, a
private temp dir and free ports, so other Ray sessions on the machine are never touched; at the
end it SIGKILLs exactly the processes of those sessions (never `ray stop`, which stops every Ray
on the machine). The search runs as the CLI in its own process; trial files come back from the
tasks (no shared directory is used). The second test SIGKILLs the worker node after a trial there
has trained an epoch: the trial is re-run on the head (the same numbers) and the study ends with
exactly its budget, all complete. The head's health checks are quick (a dead node is declared in
about 3 s instead of Ray's default 15-30 s).
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install 'trainlab[ray]')")

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
if RAY is None:
    pytest.skip("the ray command is not installed", allow_module_level=True)

CONFIG = """
data: {name: spirals}
model: {kind: mlp, width: 256, depth: 3}
optim: {name: adam, lr: 1e-2}
train: {epochs: 3, batch_size: 4}
search:
  strategy: random
  trials: 4
  workers: 2
  executor: ray
  space:
    optim.lr: loguniform(1e-4, 3e-3)
"""

QUICK_HEALTH_CHECKS = {  # the head's GCS declares a silent node dead after 3 missed checks
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _session_pids(sid: int) -> list[int]:
    """The processes of one session (Ray puts each task worker in a process group of its own,
    but in the session of the `ray start` that started its raylet)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def _kill_session(sid: int) -> None:
    """SIGKILL one `ray start`'s session: its raylet, agents and task workers."""
    deadline = time.monotonic() + 10
    while (pids := _session_pids(sid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


class Cluster:
    """A head and one worker node, each a `ray start` in a session of its own."""

    def __init__(self) -> None:
        # short: Ray puts Unix sockets under it (108 bytes at most)
        self.temp = Path(tempfile.mkdtemp(prefix="tlray-", dir="/tmp"))
        token = self.temp / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",  # `ray start --address` does not turn it on by itself
            "RAY_AUTH_TOKEN_PATH": str(token),
        }
        self.sessions: dict[str, int] = {}
        self.values: dict[int, float] = {}  # the first search's results, trial by trial

    def start(self) -> None:
        gcs, client, dash, *node_ports = _free_ports(11)
        self.address = f"127.0.0.1:{gcs}"
        self._start(
            "head",
            ["--head", f"--port={gcs}", f"--ray-client-server-port={client}"]
            + [f"--dashboard-port={dash}", "--include-dashboard=false"]
            + [f"--temp-dir={self.temp}", "--disable-usage-stats"]
            + self._node_args(node_ports[:4]),
            env=QUICK_HEALTH_CHECKS,
        )
        self._start(
            "worker",
            [f"--address={self.address}", '--resources={"trainlab_worker_node": 1}']
            + self._node_args(node_ports[4:]),
        )

    @staticmethod
    def _node_args(ports: list[int]) -> list[str]:
        agent, manager, objects, metrics = ports
        return [
            "--num-cpus=1",
            "--object-store-memory=80000000",
            f"--node-manager-port={manager}",
            f"--object-manager-port={objects}",
            f"--metrics-export-port={metrics}",
            f"--dashboard-agent-listen-port={agent}",
        ]

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        tmp = self.temp / f"{name}-tmp"  # the node's tasks train in temporary folders here
        tmp.mkdir()
        log = self.temp / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [RAY, "start", *args],
                env={**self.env, **(env or {}), "TMPDIR": str(tmp)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # every process it leaves running is in this session
            )
            self.sessions[name] = proc.pid
            code = proc.wait(timeout=60)
        if code != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{log.read_text()}")

    def epochs_trained_on(self, name: str) -> int:
        """The most epochs a trial running on that node has recorded so far."""
        logs = (self.temp / f"{name}-tmp").glob("trainlab-trial-*/*/metrics.jsonl")
        return max((len(p.read_text().splitlines()) for p in logs), default=0)

    def kill(self, name: str) -> None:
        _kill_session(self.sessions.pop(name))

    def stop(self) -> None:
        for name in list(self.sessions):
            self.kill(name)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()  # also when a test failed or a node did not start


def _search(cluster: Cluster, cwd: Path, name: str) -> subprocess.Popen:
    (cwd / f"{name}.yaml").write_text(CONFIG)
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab", "search", f"{name}.yaml", "--executor", "ray"]
        + ["--ray-address", cluster.address, "--json"],
        cwd=cwd,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_trials(study_dir: Path, n: int) -> None:
    for number in range(n):
        d = study_dir / "trials" / f"{number:04d}"
        assert {"best.pt", "result.json", "config.yaml", "metrics.jsonl"} <= {
            p.name for p in d.iterdir()
        }, number
        result = json.loads((d / "result.json").read_text())
        assert (study_dir.parent.parent.parent / result["run_dir"]).resolve() == d.resolve()
        assert len((d / "metrics.jsonl").read_text().splitlines()) == 3


def _values(summary: dict) -> dict[int, float]:
    return {row["trial"]: row["value"] for row in summary["leaderboard"]}


def test_search_on_a_two_node_cluster(cluster, tmp_path):
    proc = _search(cluster, tmp_path, "cluster")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["trials"] == {"complete": 4, "pruned": 0, "diverged": 0, "failed": 0}
    _check_trials(tmp_path / "runs" / "search" / "cluster", 4)
    cluster.values = _values(summary)


def test_killing_the_worker_node_mid_trial_reruns_the_trial(cluster, tmp_path):
    proc = _search(cluster, tmp_path, "node-dies")
    try:
        deadline = time.monotonic() + 60
        while not 1 <= cluster.epochs_trained_on("worker") < 3:  # after epoch 1, before 3
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no trial trained on the worker node"
            time.sleep(0.05)
        cluster.kill("worker")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["trials"] == {"complete": 4, "pruned": 0, "diverged": 0, "failed": 0}
    assert "lost its Ray worker (NodeDiedError): re-running it" in err
    _check_trials(tmp_path / "runs" / "search" / "node-dies", 4)
    if cluster.values:  # the re-run trial trained the same config and seed: the same numbers
        assert _values(summary) == cluster.values
