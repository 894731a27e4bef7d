#!/usr/bin/python3
"""Peer timing: the same Exemplar-CNN network, batch and classes in PyTorch (CPU, or CUDA with --device cuda;
plain fp32 unless --tf32).

    /usr/bin/python3 bench/peers/torch_step.py --net 64c5-64c5-128f --batch 128 --classes 1000 --threads 2

Prints one JSON line: train_samples_per_s, infer_samples_per_s. The network is
built as lib/nets.ts builds the release variant: 5x5 convolutions with padding
2, ReLU, 3x3 stride-2 max-pooling (ceil mode) after the first two, the FC
layer over the whole last map with ReLU and dropout 0.5, a linear softmax layer;
SGD with momentum 0.9 and cross-entropy loss.
"""
import argparse
import json
import re
import time

import torch
import torch.nn as nn


def build(name, classes):
    layers, ch, size, conv = [], 3, 32, 0
    for part in name.split("-"):
        m = re.fullmatch(r"(\d+)c(\d+)", part)
        if m:
            units, k = int(m[1]), int(m[2])
            layers += [nn.Conv2d(ch, units, k, padding=k // 2), nn.ReLU()]
            if conv < 2:
                layers.append(nn.MaxPool2d(3, 2, padding=0, ceil_mode=True))
                size = (size + 1) // 2
            ch, conv = units, conv + 1
            continue
        units = int(part[:-1])
        if not any(isinstance(l, nn.Flatten) for l in layers):
            layers.append(nn.Flatten())
            ch = ch * size * size
        layers += [nn.Linear(ch, units), nn.ReLU(), nn.Dropout(0.5)]
        ch = units
    layers.append(nn.Linear(ch, classes))
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="64c5-64c5-128f")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tf32", action="store_true", help="on CUDA: allow TF32 tensor cores (default: plain fp32)")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch cannot use CUDA here")
    # PyTorch lets cuDNN convolutions use TF32 by default; the fp32 figure must not.
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = a.device == "cuda"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    net = build(a.net, a.classes).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.004)
    x = torch.randn(a.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    def timed(f, seconds):
        f()
        sync()
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < seconds:
            f()
            sync()
            n += 1
        return n * a.batch / (time.perf_counter() - t0)

    net.train()
    train = timed(step, a.seconds)
    net.eval()
    with torch.no_grad():
        infer = timed(lambda: net(x), a.seconds / 2)
    gpu = torch.cuda.get_device_name() if a.device == "cuda" else None
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "device": a.device, "gpu": gpu,
                      "precision": "tf32" if a.tf32 else "fp32", "threads": a.threads,
                      "net": a.net,
                      "batch": a.batch, "classes": a.classes, "train_samples_per_s": round(train, 1),
                      "infer_samples_per_s": round(infer, 1)}))


if __name__ == "__main__":
    main()
