#!/usr/bin/env bash
# Packs the GPU check (bench/gpu.ts) for a lent GPU machine that has no network, into .gpu/ (ignored by git):
#   .gpu/gpu.js                 bench/gpu.ts and everything it imports, TensorFlow.js included, in one file
#   .gpu/peers/torch_step.py    the PyTorch peer, found beside the bundle
#   .gpu/deno.tar.xz            this machine's Deno binary
# On the GPU machine, from the repository root (the device tool with carry [".gpu"]):
#   mkdir -p /tmp/d && tar -xJf .gpu/deno.tar.xz -C /tmp/d && /tmp/d/deno run -A .gpu/gpu.js --seconds 6
# (EXEMPLAR_PYTHON names the Python with CUDA-enabled torch when it is not /usr/bin/python3.)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu
mkdir -p .gpu/peers
deno bundle --platform deno -o .gpu/gpu.js bench/gpu.ts
cp bench/peers/torch_step.py .gpu/peers/
XZ_OPT=-T0 tar -cJf .gpu/deno.tar.xz -C "$(dirname "$(readlink -f "$(command -v deno)")")" deno
du -sh .gpu/gpu.js .gpu/deno.tar.xz; du -sh .gpu | sed "s/\t.gpu/  in all/"
