"""Running one function in several threads at once, for the tests that need real concurrent sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(target: Callable[[int], None], n: int) -> list[BaseException]:
    """target(0) .. target(n - 1), each in its own thread, all at once; waits for all and returns what they raised."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported to the caller, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
