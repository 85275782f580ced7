"""Timing helpers shared by the GPU benchmarks: device synchronisation and the median of repeated runs."""
import statistics, time
import torch


def sync(dev):
    "Wait for queued GPU work (device work is asynchronous); nothing on a CPU."
    if dev.type == 'cuda': torch.cuda.synchronize()


def timeit(fn, dev, warmup=2, reps=5):
    "Median wall time of `reps` calls of `fn` after `warmup` untimed ones, each followed by a sync."
    for _ in range(warmup): fn()
    sync(dev)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
