"""Training throughput (images/s) and peak memory of a preset, as benchmark JSON.

    python -m models.training.throughput --preset tiny --threads 2 \
        --out benchmarks/results/train-throughput-cpu-tiny.json

Renders a small phantom cohort at the preset's grid in a temporary folder, then for each model
trains `warmup + steps` steps and reports the median step time over the last `steps` (warm-up
excluded: first steps pay for allocator and oneDNN kernel set-up), images/s = batch / median,
the CPU seconds per step (contention-independent on a shared machine), and the peak memory (CUDA allocator peak on a GPU; on CPU the process's max RSS, which includes
the cohort held in memory and is measured per model in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from edge_runtime.atomic import atomic_write_json
from edge_runtime.machine import provenance
from models.aphidiff.config import MODEL_KINDS, preset
from models.training.config import train_preset
from models.training.trainer import Trainer, peak_memory_mib


def measure_one(model: str, preset_name: str, data: Path, steps: int, warmup: int) -> dict:
    """Train `model` for warmup + steps steps in a temporary run; return the figures."""
    mc = preset(preset_name, model)
    tc = train_preset(preset_name)
    tc.steps = warmup + steps
    tc.checkpoint_every = 10**9  # no checkpoint inside the timed steps
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(mc, tc, data, Path(tmp) / "run")
        load_before = os.getloadavg()[0]
        times, cpu = [], []
        for step in range(1, tc.steps + 1):
            if trainer.where.device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            trainer.train_step(step)
            if trainer.where.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        timed = times[warmup:]
        median = statistics.median(timed)
        cpu_median = statistics.median(cpu[warmup:])
        params = sum(p.numel() for p in trainer.model.parameters())
        return {
            "model": model,
            "preset": preset_name,
            "params": params,
            "batch_size": tc.batch_size,
            "crop": mc.data.crop,
            "device": str(trainer.where.device),
            "precision": str(trainer.where.amp_dtype or "fp32"),
            "threads": torch.get_num_threads(),
            "steps_timed": len(timed),
            "step_s_median": round(median, 4),
            "step_s_min": round(min(timed), 4),
            "step_s_max": round(max(timed), 4),
            "images_per_s": round(tc.batch_size / median, 3),
            # CPU seconds the process used per step (all threads): on a shared machine, the
            # step time one idle core would give with 1 thread, independent of the contention.
            "cpu_s_per_step_median": round(cpu_median, 4),
            "peak_memory_mib": round(peak_memory_mib(trainer.where.device), 1),
            # The machine is shared: the 1-minute load average says how contended it was.
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--models", nargs="*", default=list(MODEL_KINDS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="cohort (default: render one)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        figures = measure_one(args.one, args.preset, args.data, args.steps, args.warmup)
        args.out.write_text(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from models.phantom import write_cohort

            grid = preset(args.preset).data.grid
            data = Path(tmp) / "cohort"
            write_cohort(4, 0, data, grid=grid, slices=16, preview=False)
        results: list[dict[str, Any]] = []
        for model in args.models:
            part = Path(tmp) / f"{model}.json"
            cmd = [sys.executable, "-m", "models.training.throughput", "--one", model]
            cmd += ["--preset", args.preset, "--steps", str(args.steps)]
            cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
            cmd += ["--data", str(data), "--out", str(part)]
            subprocess.run(cmd, check=True)
            results.append(json.loads(part.read_text()))
            print(json.dumps(results[-1]), flush=True)
    record = {"benchmark": "train-throughput", "preset": args.preset, "results": results}
    record["provenance"] = provenance(["python", "-m", "models.training.throughput", *sys.argv[1:]])
    atomic_write_json(args.out, record)
    print(json.dumps({"out": str(args.out), "results": len(results)}))


if __name__ == "__main__":
    main()
