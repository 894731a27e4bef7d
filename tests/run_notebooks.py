#!/usr/bin/python3
"""Execute Jupyter notebooks headless with Deno's kernel, strictly.

    /usr/bin/python3 tests/run_notebooks.py [--out DIR] [--timeout S] NOTEBOOK_OR_DIR...

Fails (exit 1) when a cell raises, when a promise rejection nobody awaited or
an error in a timer happens (the Deno kernel shows neither), and when a
cell's output arrives after the runner has moved on (lost output). The Deno
kernel sometimes publishes a cell's output a few milliseconds after it
reports the cell idle; stock nbconvert drops such outputs, so this runner
keeps listening for a grace period after idle before it moves on.

With --out, the executed notebooks (outputs included) are written there.
"""
import argparse
import json
import os
import queue
import sys
import time

import nbformat
from jupyter_client.manager import KernelManager

GRACE_S = 0.25  # listen this long after a cell reports idle

PRELUDE = r"""
globalThis.__nbFailures = [];
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  globalThis.__nbFailures.push("promise rejection nobody awaited: " + (e.reason?.stack ?? String(e.reason)));
});
globalThis.addEventListener("error", (e) => {
  e.preventDefault();
  globalThis.__nbFailures.push("error outside a cell (timer or callback): " + (e.error?.stack ?? e.message));
});
"""

EPILOGUE = r"""
await new Promise((r) => setTimeout(r, 500));
if (globalThis.__nbFailures.length) throw new Error(globalThis.__nbFailures.join("\n"));
"""


class NotebookFailure(Exception):
    pass


def output_from(msg):
    t, c = msg["msg_type"], msg["content"]
    if t == "stream":
        return nbformat.v4.new_output("stream", name=c["name"], text=c["text"])
    if t == "execute_result":
        return nbformat.v4.new_output("execute_result", data=c["data"], metadata=c.get("metadata", {}),
                                      execution_count=c.get("execution_count"))
    if t == "display_data":
        return nbformat.v4.new_output("display_data", data=c["data"], metadata=c.get("metadata", {}))
    if t == "error":
        return nbformat.v4.new_output("error", ename=c["ename"], evalue=c["evalue"], traceback=c["traceback"])
    return None


class Runner:
    def __init__(self, cwd, timeout):
        self.km = KernelManager(kernel_name="deno")
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.timeout = timeout
        self.done_ids = {}  # msg_id -> cell label, for cells already closed

    def stop(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def _check_late(self, msg):
        pid = msg.get("parent_header", {}).get("msg_id")
        if pid in self.done_ids and output_from(msg) is not None:
            raise NotebookFailure(f"{self.done_ids[pid]}: output arrived after the cell was closed (lost output)")

    def run(self, code, label):
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False)
        outputs, idle_at, count = [], None, None
        deadline = time.time() + self.timeout
        while True:
            if idle_at is not None and time.time() - idle_at >= GRACE_S:
                break
            if time.time() > deadline:
                self.km.interrupt_kernel()
                raise NotebookFailure(f"{label}: still running after {self.timeout} s")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            pid = msg.get("parent_header", {}).get("msg_id")
            if pid != msg_id:
                self._check_late(msg)
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle_at = time.time()
            elif msg["msg_type"] == "execute_input":
                count = msg["content"].get("execution_count")
            else:
                out = output_from(msg)
                if out is not None:
                    outputs.append(out)
        reply = self.kc.get_shell_msg(timeout=30)
        while reply.get("parent_header", {}).get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=30)
        self.done_ids[msg_id] = label
        errors = [o for o in outputs if o["output_type"] == "error"]
        if reply["content"]["status"] != "ok" or errors:
            c = reply["content"]
            detail = (errors[0]["ename"] + ": " + errors[0]["evalue"]) if errors else \
                f"{c.get('ename', 'error')}: {c.get('evalue', '')}"
            raise NotebookFailure(f"{label}: {detail}")
        return outputs, count

    def drain(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            self._check_late(msg)


def run_notebook(path, timeout, out_dir):
    nb = nbformat.read(path, as_version=4)
    name = os.path.basename(path)
    runner = Runner(os.path.dirname(os.path.abspath(path)), timeout)
    t0 = time.time()
    try:
        runner.run(PRELUDE, f"{name} (prelude)")
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            outputs, count = runner.run(cell.source, f"{name} cell {i + 1}")
            cell.outputs = outputs
            cell.execution_count = count
        runner.run(EPILOGUE, f"{name} (after the last cell)")
        runner.drain(0.5)
    finally:
        runner.stop()
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        nbformat.write(nb, os.path.join(out_dir, name))
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--out", help="write executed notebooks here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per cell")
    a = ap.parse_args()
    books = []
    for p in a.paths:
        if os.path.isdir(p):
            books += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".ipynb"))
        else:
            books.append(p)
    if not books:
        print(f"error: no notebooks in {' '.join(a.paths)}", file=sys.stderr)
        return 2
    passed = failed = 0
    for b in books:
        try:
            secs = run_notebook(b, a.timeout, a.out)
            print(f"ok   {b} ({secs:.1f} s)", flush=True)
            passed += 1
        except NotebookFailure as e:
            print(f"FAIL {b}: {e}", flush=True)
            failed += 1
    print(f"notebooks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
