#!/usr/bin/env bash
# Prepare, on this machine, what a lent GPU machine needs to run scripts/gpu-figures.sh:
# the Python 3.12 wheels its image lacks, MiniLM packed under 64 MiB (scripts/gpu_model.py),
# and SciFact. All of it goes to .gpu/ (ignored by git: no weights or data are committed).
# Then, through the device tool, from the repository root:
#   run(command="bash scripts/gpu-figures.sh", carry=[".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${BRAID_DATASETS:-../shared/data}
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/data/scifact

# What braid imports on the GPU path and the image ('cuda': torch, transformers,
# sentence-transformers, numpy, scipy, accelerate, pyarrow, ... are there) does not hold,
# at the versions this checkout runs with.
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
for pkg in qdrant-edge-py tantivy qdrant-client pydantic pydantic-core pydantic-settings \
    python-dotenv annotated-types typing-inspection tenacity datasets dill multiprocess \
    ir-measures pytrec-eval-terrier; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .gpu/wheels "$pkg==$(version "$pkg")"
done

MODEL=$("$PY" -c "from braid.engine.model_files import resolve_model_path as r; print(r('sentence-transformers/all-MiniLM-L6-v2'))")
"$PY" scripts/gpu_model.py pack "$MODEL" .gpu/minilm

cp "$DATA/scifact/queries.jsonl" .gpu/data/scifact/
cp -r "$DATA/scifact/qrels" .gpu/data/scifact/
gzip -c "$DATA/scifact/corpus.jsonl" > .gpu/data/scifact/corpus.jsonl.gz

echo "bundle: $(du -sh .gpu | cut -f1) in .gpu (the device tool carries 64 MiB a call, the repository included)"
