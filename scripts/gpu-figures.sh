#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issues 13 and 15): run it from the repository
# root after scripts/gpu-bundle.sh, through the device tool:
#   run(command="bash scripts/gpu-figures.sh", carry=[".gpu"], timeout_s=540)
# It writes, under $OUT: env.txt (GPU, versions), rerank.json (fp16 cross-encoder, 100 pairs),
# ingest.json (embedding throughput: the ingest path and raw model.encode), train.json (one
# epoch of `braid train embedder` on SciFact train), query.json (the query path with the query
# encoder on CUDA, 100k chunks) and log.txt. Steps run most-wanted first, each under its own
# time limit, so a slow one costs only itself. GPU_FIGURES_QUICK=1 shrinks every step (a rehearsal
# on a machine without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-figures}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
PY=${PYTHON:-python3}
QUICK=${GPU_FIGURES_QUICK:-0}
WORK=${GPU_FIGURES_WORK:-/tmp/braid-gpu}
rm -rf "$WORK" && mkdir -p "$WORK/data/scifact"

"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$WORK/site" .gpu/wheels/*.whl || exit 1
export PYTHONPATH="$WORK/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PY" scripts/gpu_model.py unpack .gpu/minilm "$WORK/minilm" || exit 1
cp -r .gpu/data/scifact/queries.jsonl .gpu/data/scifact/qrels "$WORK/data/scifact/"
gunzip -c .gpu/data/scifact/corpus.jsonl.gz > "$WORK/data/scifact/corpus.jsonl"
export BRAID_EMBEDDER__MODEL="$WORK/minilm" BRAID_DATA_DIR="$WORK/braid-data"
SCIFACT="$WORK/data/scifact"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  "$PY" -c "import torch, transformers, sentence_transformers as st; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'); \
print('transformers', transformers.__version__, 'sentence-transformers', st.__version__)"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step() {  # step NAME SECONDS ARGS...: one braid command, its JSON to $OUT/NAME.json
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): braid $*"
  local started=$SECONDS
  timeout "$limit" "$PY" -m braid.cli "$@" --json > "$OUT/$name.json"
  echo "== $name: exit $? after $((SECONDS - started)) s"
}

if [ "$QUICK" = 1 ]; then
  step rerank 300 bench rerank --pairs 100 --calls 3 --corpus "$SCIFACT"
  step ingest 300 bench ingest --corpus "$SCIFACT" --limit 64 --data-dir "$WORK/bench-ingest"
  step train 600 train embedder --dataset "$SCIFACT" --max-steps 2 --batch-size 4 \
    --max-length 64 --gate-corpus 200 --data-dir "$WORK/braid-data" --out "$WORK/ft"
  step query 600 bench query --docs 300 --real-vectors 300 --queries 10 --backends torch \
    --corpus "$SCIFACT" --data-dir "$WORK/bench-query"
else
  step rerank 60 bench rerank --pairs 100 --calls 50 --corpus "$SCIFACT"
  step ingest 60 bench ingest --corpus "$SCIFACT" --batch-size 128 --data-dir "$WORK/bench-ingest"
  # One epoch, the CPU defaults otherwise (batch 32, 256 tokens, one mined negative), so that
  # the figure compares with the README's 2-core runs; `seconds` in train.json.
  step train 150 train embedder --dataset "$SCIFACT" --epochs 1 \
    --data-dir "$WORK/braid-data" --out "$WORK/ft"
  step query 180 bench query --docs 100000 --real-vectors 4096 --backends torch \
    --corpus "$SCIFACT" --data-dir "$WORK/bench-query"
fi
ls -la "$OUT"
