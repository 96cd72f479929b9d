"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import threading
from collections.abc import Callable

from training.data import Sample


def perturb(text: str, rng: random.Random) -> str:
    """A plausible variant of a request: a typo, changed case, a dropped or doubled word."""
    words = text.split()
    for _ in range(max(1, len(words) // 12)):
        i = rng.randrange(len(words))
        word = words[i]
        choice = rng.random()
        if choice < 0.35 and len(word) > 3:
            j = rng.randrange(len(word) - 1)
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        elif choice < 0.55:
            words[i] = word.lower() if word[:1].isupper() else word.capitalize()
        elif choice < 0.8 and len(words) > 4:
            words.pop(i)
        else:
            words.insert(i, word)
    return " ".join(words)


def scaled_samples(samples: list[Sample], factor: int, seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    out = list(samples)
    for k in range(1, factor):
        out += [Sample(f"{s.id}-p{k}", perturb(s.text, rng), s.labels, s.lang) for s in samples]
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _pss_mb(pids: list[int]) -> float:
    """Proportional set size of processes together: shared pages counted once, not per fork."""
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kb / 1024


class MemorySampler:
    """Samples the PSS of this process and all its descendants; keeps the peak."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _pss_mb(_descendants(os.getpid())))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _in_child(fn: Callable[[], dict], queue: multiprocessing.Queue) -> None:
    with MemorySampler() as sampler:
        result = fn()
    result["peak_pss_total_mb"] = sampler.peak_mb
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Worker processes it forked (cross-validation folds): the largest one's peak.
    result["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put(result)


def isolated(fn: Callable[[], dict], fresh: bool = False) -> dict:
    """Run ``fn`` in a fresh process and add that process's peak memory to its result.

    The process is forked, so it starts with what this one has in memory, caches included;
    with ``fresh`` it is a new interpreter instead (``fn`` must then be picklable).
    """
    ctx = multiprocessing.get_context("spawn" if fresh else "fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_in_child, args=(fn, queue))
    process.start()
    result = queue.get()
    process.join()
    return result
