#!/usr/bin/env bash
# Packs the GPU check and GPU pretraining for a lent GPU machine that has no network, into .gpu/ (ignored by git):
#   .gpu/gpu.js                 bench/gpu.ts and everything it imports, TensorFlow.js included, in one file
#   .gpu/gpu_gemm.js            bench/gpu_gemm.ts, likewise
#   .gpu/pretrain.js            tasks/pretrain.ts, likewise
#   .gpu/reproduce.js           tasks/reproduce.ts, likewise (its duration estimate is checked there)
#   .gpu/surrogate_worker.ts    the surrogate-generation worker, bundled (JavaScript under the name the loader asks
#                               for: `new URL("./surrogate_worker.ts", import.meta.url)` from a bundle in .gpu/)
#   .gpu/peers/torch_step.py    the PyTorch peer, found beside the bundle
#   .gpu/plotly.min.js          the chart library a run folder's curves.html loads (gpu_device.sh puts it where the
#                               bundles look for it, node_modules/plotly.js-dist-min/)
#   .gpu/deno.tar.xz            this machine's Deno binary
# imagescript stays outside the bundles (it carries native codecs): nothing that runs there decodes an image file.
# On the GPU machine, from the repository root (the device tool with carry [".gpu"]):
#   mkdir -p /tmp/d && tar -xJf .gpu/deno.tar.xz -C /tmp/d && /tmp/d/deno run -A .gpu/gpu.js --seconds 6
# (EXEMPLAR_PYTHON names the Python with CUDA-enabled torch when it is not /usr/bin/python3.)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu
mkdir -p .gpu/peers
bundle() { deno bundle --quiet --platform deno --external imagescript -o "$2" "$1"; }
bundle bench/gpu.ts .gpu/gpu.js
bundle bench/gpu_gemm.ts .gpu/gpu_gemm.js
bundle tasks/pretrain.ts .gpu/pretrain.js
bundle tasks/reproduce.ts .gpu/reproduce.js
bundle lib/surrogate_worker.ts .gpu/surrogate_worker.ts
cp bench/peers/torch_step.py .gpu/peers/
cp node_modules/plotly.js-dist-min/plotly.min.js .gpu/
# The Deno binary, packed once per Deno version (it takes half a minute).
deno_bin=$(readlink -f "$(command -v deno)")
mkdir -p "${XDG_CACHE_HOME:-$HOME/.cache}"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/exemplar-gpu-deno-$(deno --version | head -1 | cut -d' ' -f2).tar.xz
[ -f "$cache" ] || XZ_OPT=-T0 tar -cJf "$cache" -C "$(dirname "$deno_bin")" deno
cp "$cache" .gpu/deno.tar.xz
du -sh .gpu/*.js .gpu/*.ts .gpu/deno.tar.xz; du -sh .gpu | sed "s/\t.gpu/  in all/"
