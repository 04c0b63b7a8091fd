#!/usr/bin/env bash
# One run on many processes, the CUDA path (for a session lent one GPU; a few minutes):
#   1. one process on the GPU (the reference),
#   2. torchrun with one process: NCCL at world size 1 (DDP, the all-reduce path, rank 0 writes),
#   3. --nproc 2 sharing the one GPU (NCCL usually refuses two ranks on one device: the outcome,
#      whatever it is, is recorded),
# each with time per epoch (median of metrics.jsonl's "seconds", the first epoch left out) and
# the largest relative difference of its per-epoch losses against the reference.
# Needs python with torch (CUDA) and trainlab's dependencies; run from the repository root:
#   OUT=/tmp/out bash bench/distributed_cuda.sh
set -u
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name(0), 'nccl', torch.cuda.nccl.version())" | tee "$OUT/torch.txt" || exit 1
cat > "$OUT/cfg.yaml" <<'YAML'
data: {name: mnist1d}
model: {kind: mlp, width: 512, depth: 3}
optim: {name: momentum, lr: 0.05}
train: {epochs: 6, batch_size: 512, device: cuda, log_steps: false}
YAML
run() {  # name, command...
  local name=$1; shift
  local start=$(date +%s%N)
  timeout 240 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  echo "$name rc=$rc wall=$(( ($(date +%s%N) - start) / 1000000 ))ms" | tee -a "$OUT/runs.txt"
}
run one $PY -m trainlab train "$OUT/cfg.yaml" --out "$OUT/one" --json
run nccl1 $PY -m torch.distributed.run --standalone --nproc-per-node 1 \
  -m trainlab train "$OUT/cfg.yaml" --out "$OUT/nccl1" --json
run shared2 $PY -m trainlab train "$OUT/cfg.yaml" --out "$OUT/shared2" --nproc 2 --json
$PY - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
def rows(name):
    p = out / name / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []
ref = rows("one")
summary = {}
for name in ("one", "nccl1", "shared2"):
    r = rows(name)
    if not r:
        err = (out / f"{name}.err").read_text().strip().splitlines()
        summary[name] = {"error": err[-1] if err else "no metrics"}
        continue
    diff = max((abs(a["train_loss"] - b["train_loss"]) / abs(a["train_loss"])
                for a, b in zip(r, ref)), default=None)
    summary[name] = {"epochs": len(r), "epoch_s": statistics.median(x["seconds"] for x in r[1:] or r),
                     "max_rel_loss_diff": diff}
print(json.dumps(summary, indent=1))
(out / "summary.json").write_text(json.dumps(summary))
PY
