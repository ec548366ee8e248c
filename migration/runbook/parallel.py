"""Stores moved side by side: inside the freeze every second counts, and the stores are independent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["side_by_side"]

T = TypeVar("T")


def side_by_side(tasks: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Run each task in its own thread; wait for all of them, then raise the first error, if any.

    Waiting for every task before raising means nothing is still writing when the phase fails.

    :param tasks: name → work, in the order the results are reported.
    """
    if len(tasks) <= 1:
        return {name: task() for name, task in tasks.items()}
    with ThreadPoolExecutor(len(tasks), thread_name_prefix="ferry-store") as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
        errors = [future.exception() for future in futures.values()]
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first
    return {name: future.result() for name, future in futures.items()}
