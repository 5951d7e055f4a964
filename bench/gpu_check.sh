#!/usr/bin/env bash
# The trainer's GPU check (issue #8): QLoRA on a LLaMA-2-7B-shaped model, 20 steps at 1024 tokens.
#
# The GPU machines have torch and transformers but not peft or bitsandbytes, and cannot download: carry them
# as wheels. Once, on the development machine, from the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl peft bitsandbytes accelerate pydantic pydantic-core annotated-types typing-inspection
# Then run this script there with .whl carried (the device tool's `carry: [".whl"]`), e.g.
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then python3 -m pip install --quiet --no-index --find-links .whl --no-deps .whl/*.whl; fi
python3 bench/gpu_check.py "$@"
