"""One model, one thread: requests queue for it, and those that arrive together run as one batch."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

_STOP = None


@dataclass
class _Job:
    image: np.ndarray  # (S, S, 3) uint8, already at the network's input size
    future: Future


class ModelRunner:
    """Runs ``predictor.probabilities`` on a thread of its own, so no request holds the model twice
    and the web server's event loop never waits on it.

    A request enqueues its network-size image and gets a ``Future`` of its ``(S, S)`` foreground
    probabilities. The thread takes whatever has queued up meanwhile, up to ``max_batch`` images,
    as one batch: no request waits for others to arrive. ``predictor``: a ``Predictor`` or an
    ``OnnxPredictor``.
    """

    def __init__(self, predictor: Any, tta: bool = False, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.predictor = predictor
        self.tta = tta
        self.max_batch = max_batch
        self.batches_run = 0
        self.images_run = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="nexnet-model", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray) -> Future:
        """Queue one ``(S, S, 3)`` uint8 image; the future resolves to its ``(S, S)`` float32 probabilities."""
        if not self._thread.is_alive():
            raise RuntimeError("the model runner is closed")
        job = _Job(image, Future())
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish the queued work, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _next_batch(self) -> tuple[list[_Job], bool]:
        """The first job (waiting for it) and whatever else is already queued; and whether to stop."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        jobs = [first]
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
        return jobs, False

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _work(self) -> None:
        stop = False
        while not stop:
            jobs, stop = self._next_batch()
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]  # a cancelled request is dropped
            if not jobs:
                continue
            try:
                images = np.stack([j.image for j in jobs])
                probs = self.predictor.probabilities(images, batch_size=len(jobs), tta=self.tta)
            except Exception as e:  # noqa: BLE001 - handed to every waiting request, the thread lives on
                for job in jobs:
                    job.future.set_exception(e)
                continue
            self.batches_run += 1
            self.images_run += len(jobs)
            for job, prob in zip(jobs, probs):
                job.future.set_result(prob)
