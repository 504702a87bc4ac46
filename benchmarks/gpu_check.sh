#!/usr/bin/env bash
# GPU check for anyxp_nn, one command on a machine with an NVIDIA GPU (run from the repository root):
#
#     bash benchmarks/gpu_check.sh            # STEPS=20 ROUNDS=3 PYTHON=python to change
#
# 1. installs the CuPy wheel that matches the CUDA driver (cupy-cuda12x or cupy-cuda11x) and this
#    package with its test extras into the current Python environment;
# 2. runs the test suite on the `cupy` and `torch:cuda` backends (a CUDA build of PyTorch must be
#    installed for torch:cuda; without one those tests skip);
# 3. runs the CNN / ResNet training-step benchmarks against PyTorch CUDA and prints one table.
# Exit status: non-zero when the tests fail.
set -euo pipefail
PY=${PYTHON:-python}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi not found: this machine has no NVIDIA driver" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
cuda_major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -n1)
wheel=cupy-cuda12x
if [ "${cuda_major:-12}" -lt 12 ]; then wheel=cupy-cuda11x; fi
echo "== installing $wheel and anyxp_nn[test] (CUDA driver supports CUDA ${cuda_major:-?})"
$PY -m pip install --quiet "$wheel" threadpoolctl -e ".[test]"
$PY - <<'EOF'
import cupy, torch
print("cupy", cupy.__version__, "devices:", cupy.cuda.runtime.getDeviceCount())
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
EOF

echo "== test suite on cupy and torch:cuda"
status=0
$PY -m pytest -q -n 0 -p no:cacheprovider --anyxp-backends=cupy,torch:cuda tests || status=$?

echo "== CNN / ResNet training steps vs PyTorch CUDA (median ms/step, ${ROUNDS} rounds x ${STEPS} steps)"
libs=cupy
if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    libs=cupy,torch-backend:cuda,torch:cuda
else
    echo "gpu_check: this PyTorch has no CUDA: no torch:cuda tests or reference column" \
         "(pip install torch --index-url https://download.pytorch.org/whl/cu124 adds them)" >&2
fi
PYTHONPATH=$PWD $PY benchmarks/bench_table.py --models cnn,cnn_bn,resnet --libs "$libs" \
    --threads 1 --loads quiet --steps "$STEPS" --rounds "$ROUNDS"
exit $status
