#!/usr/bin/env bash
# The GPU part of `snapfit bench`, for a lent GPU machine that has torch with CUDA but not our virtualenv:
#
#   bash benchmarks/gpu_run.sh WHEEL_DIR OUT_DIR
#
# Installs (with --no-deps, into /tmp/snapfit-gpu-deps) only those of WHEEL_DIR's wheels whose module the machine's
# python3 cannot import, then runs the `peaks` and `models` steps on CUDA (torch fp32 / fp16 / bf16 per model) and
# writes OUT_DIR/results.json plus nvidia-smi.txt. Render it here afterwards:
#   python -c "from benchmarks.report import *; d='benchmarks/results/<id>'; write_report(load_results(d), d)"
set -euo pipefail
WHEELS=${1:?wheel folder}
OUT_DIR=${2:?output folder}
DEPS=/tmp/snapfit-gpu-deps
mkdir -p "$OUT_DIR" "$DEPS"
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true
# wheel name prefix -> module it provides
for pair in onnx:onnx onnxruntime:onnxruntime segment_anything:segment_anything diffusers:diffusers \
            open_clip_torch:open_clip rich:rich markdown_it_py:markdown_it mdurl:mdurl pygments:pygments; do
  wheel=${pair%%:*}; module=${pair##*:}
  if ! python3 -c "import $module" 2>/dev/null; then
    file=$(ls "$WHEELS"/"$wheel"-[0-9]*.whl | head -1)
    echo "installing $file"
    python3 -m pip install --quiet --no-deps --target "$DEPS" "$file"
  fi
done
export PYTHONPATH="$PWD:$DEPS"
python3 - "$OUT_DIR" <<'PY'
import sys
from pathlib import Path

from rich.console import Console

from benchmarks.suite import BenchRun, run_bench

run_bench(BenchRun(device="cuda", out=Path(sys.argv[1]), render=False), Console(), show_progress=False)
PY
