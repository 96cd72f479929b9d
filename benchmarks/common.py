"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import multiprocessing
import random
import resource
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


def _in_child(fn: Callable[[], dict], queue: multiprocessing.Queue) -> None:
    result = fn()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def isolated(fn: Callable[[], dict]) -> dict:
    """Run ``fn`` in a fresh process and add that process's peak memory to its result."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_in_child, args=(fn, queue))
    process.start()
    result = queue.get()
    process.join()
    return result
