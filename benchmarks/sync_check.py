"""Does the timed call really wait for the device? Two checks on each case's `run`, as the benchmarks time it.

1. Time grows with the epochs: a training of 4E epochs must take well over the time of
   one of E epochs (at least GROWTH_MIN times). A `run` that returned once the work was
   queued would take about the same time whatever the epochs.
2. On cuda, nothing is left when it returns: CUDA events recorded on torch's current
   stream just before and after the call must not span more than the wall time did (a
   torch call that returned early leaves its kernels behind the end event), and a
   device-wide synchronize right after it must find (almost) nothing left to wait for.
   The events see torch's stream only: for JAX, whose work runs on its own streams, the
   growth with the epochs and the synchronize after it are the checks.

Run as `python -m benchmarks.sync_check --device cuda --json FILE`: prints a table, writes
the rows, and exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from backprop_bench import backends
from backprop_bench.timing import Training
from backprop_bench.workloads import find

ROUNDS = 5
GROWTH = 4            # the longer training has GROWTH times the epochs
GROWTH_MIN = 2.0      # and must take at least this many times as long (fixed costs keep it under GROWTH)
SLACK_S = 50e-6       # timer and event resolution, and the host's own work around the call


def time_run(training: Training, device: str) -> dict:
    """Median wall time of `run` over ROUNDS fresh loads; on cuda also CUDA events around it and what was left."""
    training.time_once()  # compile, capture, warm up
    if device != "cuda":
        return {"wall_s": statistics.median(training.time_once()[0] for _ in range(ROUNDS)),
                "event_s": None, "left_s": None}
    import torch

    walls, events, left = [], [], []
    for _ in range(ROUNDS):
        loaded = training.fresh()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()  # the events and the clock around the timed call alone, as Training.time_once times it
        began = time.perf_counter()
        training.run(loaded)
        walls.append(time.perf_counter() - began)
        end.record()
        began = time.perf_counter()
        torch.cuda.synchronize()  # cudaDeviceSynchronize: every stream, JAX's too
        left.append(time.perf_counter() - began)
        events.append(start.elapsed_time(end) / 1e3)
    return {"wall_s": statistics.median(walls), "event_s": statistics.median(events), "left_s": statistics.median(left)}


def check(name: str, variant: str, device: str, workload_name: str, epochs: int) -> dict:
    chosen = find(workload_name)
    short, long = (chosen.spec.with_(epochs=n) for n in (epochs, GROWTH * epochs))
    row = {"backend": name, "variant": variant, "device": device, "workload": workload_name, "epochs": epochs}
    for label, spec in (("short", short), ("long", long)):
        training = Training(spec, chosen.data, name, variant, device)
        row.update({f"{label}_{k}": v for k, v in time_run(training, device).items()})
    row["growth"] = row["long_wall_s"] / row["short_wall_s"]
    row["grows"] = row["growth"] >= GROWTH_MIN
    if device == "cuda":
        wall, event, left = row["long_wall_s"], row["long_event_s"], row["long_left_s"]
        row["events_agree"] = event <= wall + SLACK_S if backends.framework(name).cuda_stream else None
        row["nothing_left"] = left <= 0.05 * wall + SLACK_S
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--workloads", default="seed-affine:250,mlp-4096x1024:2",
                        help="NAME:EPOCHS,... the workloads and the shorter training's epochs")
    parser.add_argument("--json", metavar="FILE", help="also write the rows there")
    args = parser.parse_args(argv)
    rows, skipped = [], []
    for name, variant, device, reason in backends.cases():
        if device != args.device or not reason and (backends.get(name, variant).opt_in
                                                     or not backends.framework(name).queues_work):
            continue  # another device's; torch compile (it compiles for minutes); a framework that never queues work
        if reason:
            skipped.append(f"{name}-{variant}")
            continue
        for item in args.workloads.split(","):
            workload_name, epochs = item.split(":")
            rows.append(check(name, variant, args.device, workload_name, int(epochs)))
    failed = [r for r in rows if not all(r.get(k) is not False for k in ("grows", "events_agree", "nothing_left"))]
    for r in rows:
        events = f"events {r['long_event_s'] * 1e3:9.3f} ms  left {r['long_left_s'] * 1e6:8.1f} us" \
            if args.device == "cuda" else ""
        print(f"{r['backend']}-{r['variant']:<10} {r['workload']:<14} {r['epochs']:>4} -> {GROWTH * r['epochs']:>5} "
              f"epochs: {r['short_wall_s'] * 1e3:9.3f} -> {r['long_wall_s'] * 1e3:9.3f} ms (x{r['growth']:.2f})  "
              f"{events}  {'FAIL' if r in failed else 'ok'}")
    if skipped:
        print(f"not runnable on {args.device} here: {', '.join(skipped)}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rounds": ROUNDS, "growth": GROWTH, "growth_min": GROWTH_MIN, "rows": rows,
                       "skipped": skipped}, out, indent=1)
    print(f"sync check: {len(rows) - len(failed)} of {len(rows)} ok")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
