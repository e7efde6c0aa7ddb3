"""Actor runtime benchmarks (real clock): mailbox vs raw channel throughput, ask latency,
LatestValue fan-out, memory per idle actor.

Targets (issue 3): mailbox/raw throughput ratio >= 0.5, ask p50 <= 50 µs, memory per idle
actor <= 20 KiB.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from typing import Any

import trio

from actors.runtime import (
    Actor,
    Address,
    LatestValue,
    RestartPolicy,
    open_dynamic_supervisor,
    run_actor,
)
from benchmarks._harness import Record

N_MESSAGES = 100_000
N_ASKS = 20_000
N_CONSUMERS = 1_000
N_UPDATES = 300
N_IDLE = 1_000


class _Sink(Actor[object]):
    mailbox_size = 1000

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: object) -> object:
        self.count += 1
        return self.count


class _Idle(Actor[object]):
    async def handle(self, message: object) -> object:
        return None


async def _raw_channel_rate() -> float:
    send, recv = trio.open_memory_channel[object](1000)
    count = 0

    async def consumer() -> None:  # the same loop shape as the actor's message loop
        nonlocal count
        receive = recv.receive
        while True:
            try:
                await receive()
            except trio.EndOfChannel:
                return
            count += 1

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        async with send:
            for i in range(N_MESSAGES):
                await send.send(i)
    elapsed = time.perf_counter() - t0
    assert count == N_MESSAGES
    return N_MESSAGES / elapsed


async def _mailbox_rate() -> float:
    actor = _Sink()
    async with trio.open_nursery() as nursery:
        address: Address[object] = await nursery.start(run_actor, actor, "sink")
        t0 = time.perf_counter()
        for i in range(N_MESSAGES):
            await address.send(i)
        await address.ask("flush", timeout_s=60)
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    assert actor.count == N_MESSAGES + 1
    return N_MESSAGES / elapsed


async def _ask_latencies_us() -> list[float]:
    samples: list[float] = []
    async with trio.open_nursery() as nursery:
        address: Address[object] = await nursery.start(run_actor, _Sink(), "asked")
        for _ in range(1000):  # warm-up
            await address.ask("q", timeout_s=10)
        clock = time.perf_counter_ns
        for _ in range(N_ASKS):
            t0 = clock()
            await address.ask("q", timeout_s=10)
            samples.append((clock() - t0) / 1000.0)
        nursery.cancel_scope.cancel()
    return samples


async def _fan_out() -> tuple[float, float]:
    cell: LatestValue[int] = LatestValue()
    seen = [0] * N_CONSUMERS
    all_seen = trio.Event()
    remaining = N_CONSUMERS
    target = 0

    async def consumer(i: int) -> None:
        nonlocal remaining
        async for value in cell.subscribe():
            seen[i] = value
            if value == target:
                remaining -= 1
                if remaining == 0:
                    all_seen.set()

    async with trio.open_nursery() as nursery:
        for i in range(N_CONSUMERS):
            nursery.start_soon(consumer, i)
        await trio.sleep(0.05)
        t0 = time.perf_counter()
        for v in range(1, N_UPDATES + 1):
            remaining = N_CONSUMERS
            target = v
            all_seen = trio.Event()
            cell.set(v)
            await all_seen.wait()  # every consumer saw this value
        elapsed = time.perf_counter() - t0
        # a burst: 10,000 sets never queue (O(1) each)
        t1 = time.perf_counter()
        for v in range(10_000):
            cell.set(-v)
        burst_s = time.perf_counter() - t1
        cell.close()
    assert all(s <= 0 for s in seen)
    return N_UPDATES / elapsed, 10_000 / burst_s


async def _memory_per_idle_actor() -> tuple[float, float]:
    gc.collect()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, _Idle(), "warm")  # import/lazy-init costs
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(N_IDLE):
            await nursery.start(run_actor, _Idle(), f"idle-{i}")
        await trio.sleep(0.01)
        gc.collect()
        plain = (tracemalloc.get_traced_memory()[0] - base) / N_IDLE
        tracemalloc.stop()
        nursery.cancel_scope.cancel()
    gc.collect()
    async with open_dynamic_supervisor(RestartPolicy(), lambda e: None, name="m") as sup:
        await sup.start_child("warm", _Idle)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(N_IDLE):
            await sup.start_child(i, _Idle)
        await trio.sleep(0.01)
        gc.collect()
        supervised = (tracemalloc.get_traced_memory()[0] - base) / N_IDLE
        tracemalloc.stop()
        await sup.stop(1.0)
    return plain, supervised


def run(record: Record) -> None:
    async def main() -> dict[str, Any]:
        raws: list[float] = []
        mailboxes: list[float] = []
        for _ in range(5):  # interleaved pairs, medians: the machine is shared and noisy
            raws.append(await _raw_channel_rate())
            mailboxes.append(await _mailbox_rate())
        raw = statistics.median(raws)
        mailbox = statistics.median(mailboxes)
        ratio = statistics.median(m / r for m, r in zip(mailboxes, raws, strict=True))
        asks = await _ask_latencies_us()
        fan_out, burst = await _fan_out()
        plain, supervised = await _memory_per_idle_actor()
        return {
            "raw": raw,
            "mailbox": mailbox,
            "ratio": ratio,
            "asks": asks,
            "fan_out": fan_out,
            "burst": burst,
            "plain": plain,
            "supervised": supervised,
        }

    r = trio.run(main)
    record("raw trio memory channel throughput (median of 5)", r["raw"], "msg/s")
    record("mailbox throughput, send -> handle (median of 5)", r["mailbox"], "msg/s")
    record("mailbox / raw ratio, median of pairs (target >= 0.5)", r["ratio"], "ratio")
    asks = sorted(r["asks"])
    record("ask round trip p50 (target <= 50)", statistics.median(asks), "µs")
    record("ask round trip p99", asks[int(len(asks) * 0.99) - 1], "µs")
    record(
        f"LatestValue fan-out to {N_CONSUMERS} consumers (all saw each)", r["fan_out"], "updates/s"
    )
    record(
        f"LatestValue consumer wake-ups ({N_CONSUMERS} consumers)",
        r["fan_out"] * N_CONSUMERS,
        "wakeups/s",
    )
    record("LatestValue.set burst (10,000 sets, no consumer ran)", r["burst"], "sets/s")
    record("memory per idle actor, run_actor (target <= 20 KiB)", r["plain"] / 1024, "KiB")
    record("memory per idle actor, supervised child", r["supervised"] / 1024, "KiB")
