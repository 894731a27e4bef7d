#!/usr/bin/python3
"""Peer for lib/svm.ts: scikit-learn's LinearSVC (liblinear) on the same features and C.

    /usr/bin/python3 bench/peers/sklearn_svm.py TRAIN.f32 TRAIN_LABELS.i32 TEST.f32 TEST_LABELS.i32 DIM C [BIAS]

Features are float32 rows of DIM values, labels int32. LinearSVC's defaults are
liblinear's L2-regularised squared-hinge dual solver, one-vs-rest, with the
bias as an extra feature of value intercept_scaling (= liblinear's -B).
Prints one JSON line: accuracy, training seconds and processor seconds.
"""
import json
import sys
import time

import numpy as np
from sklearn.svm import LinearSVC


def main():
    tr, ytr, te, yte, dim, C = sys.argv[1:7]
    bias = float(sys.argv[7]) if len(sys.argv) > 7 else 1.0
    dim = int(dim)
    Xtr = np.fromfile(tr, dtype=np.float32).reshape(-1, dim)
    Xte = np.fromfile(te, dtype=np.float32).reshape(-1, dim)
    ytr = np.fromfile(ytr, dtype=np.int32)
    yte = np.fromfile(yte, dtype=np.int32)
    t0, c0 = time.perf_counter(), time.process_time()
    m = LinearSVC(C=float(C), loss="squared_hinge", dual=True, intercept_scaling=bias, tol=0.1, max_iter=1000)
    m.fit(Xtr, ytr)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = float((m.predict(Xte) == yte).mean())
    print(json.dumps({"peer": "sklearn LinearSVC", "C": float(C), "accuracy": acc, "train_seconds": secs, "train_cpu_seconds": cpu}))


if __name__ == "__main__":
    main()
