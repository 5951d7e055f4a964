#!/usr/bin/env bash
# The trainer's GPU check (issues #8, #18): packed attention on the GPU's attention kernels, then QLoRA on a
# LLaMA-2-7B-shaped model, 20 steps at 1024 tokens through transformers.Trainer with the trainer's own pieces.
#
# The GPU machines have torch, transformers, accelerate and peft but not bitsandbytes or pydantic, and cannot
# download: carry them as wheels. Once, on the development machine, from the repository root (.whl/ is ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl bitsandbytes pydantic pydantic-core annotated-types typing-inspection peft==0.21.2
# Then run this script there with .whl carried (the device tool's `carry: [".whl"]`), e.g.
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
PYTHONUNBUFFERED=1 python3 bench/gpu_check.py "$@"
