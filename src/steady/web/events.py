"""Fan-out of studio events to the page's server-sent-event streams.

The generation thread publishes plain dicts; each subscriber (one per open page) owns a bounded
asyncio queue on the server's event loop. A slow page loses its oldest events, never makes the
server hold more: a queue holds at most `max_queued` events.

    hub = EventHub()
    sub = hub.subscribe()                  # inside the event loop
    event = await sub.get()
    hub.publish({"type": "progress", ...})  # from any thread
    hub.unsubscribe(sub)
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop, max_queued: int):
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queued)
        self.dropped = 0

    def _put(self, event: dict[str, Any]) -> None:  # runs on the loop
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


class EventHub:
    def __init__(self, max_queued: int = 200):
        self.max_queued = max_queued
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.get_running_loop(), self.max_queued)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, event)
            except RuntimeError:  # its loop is closed: the server is shutting down
                self.unsubscribe(sub)

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)
