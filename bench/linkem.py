#!/usr/bin/env python3
"""linkem.py - a TCP proxy that behaves like a long, narrow network link.

The benchmarks' S3 server runs on loopback, where a request costs no
latency and bandwidth is what the CPU can copy: nothing there shows how a
tool copes with a real object store 20-50 ms away.  This proxy sits between
the tools and the server (plain TCP: TLS passes through untouched) and
delays and paces what it forwards the way a link does:

  - every byte reaches the other side DELAY/2 after it was sent (one way), so
    a request and its answer cost a round trip of DELAY, a TLS handshake two;
  - a new connection's first byte arrives no sooner than one round trip plus
    one way after the connection was opened (the TCP handshake);
  - each direction of the link carries at most RATE bits per second, shared
    by all connections (a token bucket of zero depth: a chunk is on the wire
    after those before it, for len*8/RATE seconds);
  - each connection keeps at most WINDOW bytes in flight per direction (a TCP
    window): a sender that fills it waits, as it would.

The kernel's netem would do this without a process in the way, but it is
not on every machine (it is not on the benchmark VM); this costs some CPU,
which the benchmark measures and prints beside the servers'.

Statistics (bytes each way, connections) are written to --stats FILE as JSON
every 0.2 s and at exit, so a benchmark can compute the bandwidth bound of
a step: (bytes up / RATE, bytes down / RATE).

Usage:
  linkem.py --upstream HOST:PORT [--listen 127.0.0.1:0] [--delay-ms 30]
            [--rate-mbit 200] [--window-kib 4096] [--port-file F] [--stats F]
Python 3 standard library only.
"""
import argparse
import asyncio
import json
import os
import signal

CHUNK = 64 * 1024


class Link:
    """One direction of the link: when its wire is free again."""

    def __init__(self, rate_bps):
        self.rate = rate_bps
        self.free_at = 0.0
        self.bytes = 0

    def send(self, n, now):
        """Put n bytes on the wire at now or after what is on it: returns
        the time their last bit has left."""
        start = max(now, self.free_at)
        self.free_at = start + (n * 8.0 / self.rate if self.rate else 0.0)
        self.bytes += n
        return self.free_at


async def pump(reader, writer, link, one_way, not_before, window):
    """Copy reader to writer through link: each chunk delivered one_way
    after it left the wire, in order, at most window bytes in flight."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    inflight = 0
    room = asyncio.Event()
    room.set()

    async def deliver():
        nonlocal inflight
        while True:
            item = await queue.get()
            if item is None:
                break
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            inflight -= len(data)
            if inflight <= window:
                room.set()
        if writer.can_write_eof():
            writer.write_eof()

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            await room.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            now = loop.time()
            due = max(link.send(len(data), now) + one_way, not_before)
            inflight += len(data)
            if inflight > window:
                room.clear()
            queue.put_nowait((due, data))
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait(None)
        try:
            await task
        except (ConnectionError, OSError):
            pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--delay-ms", type=float, default=30.0, help="round trip time")
    ap.add_argument("--rate-mbit", type=float, default=200.0, help="each direction; 0: unlimited")
    ap.add_argument("--window-kib", type=int, default=4096)
    ap.add_argument("--port-file")
    ap.add_argument("--stats")
    a = ap.parse_args()
    uhost, uport = a.upstream.rsplit(":", 1)
    lhost, lport = a.listen.rsplit(":", 1)
    one_way = a.delay_ms / 2000.0
    rate = a.rate_mbit * 1e6
    up, down = Link(rate), Link(rate)
    conns = 0
    loop = asyncio.get_running_loop()

    async def handle(creader, cwriter):
        nonlocal conns
        conns += 1
        opened = loop.time()
        try:
            sreader, swriter = await asyncio.open_connection(uhost, int(uport))
        except OSError:
            cwriter.close()
            return
        first = opened + 3 * one_way  # SYN, SYN-ACK, then the data's own way
        w = a.window_kib * 1024
        try:
            await asyncio.gather(pump(creader, swriter, up, one_way, first, w),
                                 pump(sreader, cwriter, down, one_way, 0.0, w))
        except asyncio.CancelledError:  # the proxy is stopping
            pass
        for wr in (swriter, cwriter):
            try:
                wr.close()
            except OSError:
                pass

    def write_stats():
        if a.stats:
            tmp = a.stats + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"bytes_up": up.bytes, "bytes_down": down.bytes, "connections": conns,
                           "delay_ms": a.delay_ms, "rate_mbit": a.rate_mbit}, f)
            os.replace(tmp, a.stats)

    server = await asyncio.start_server(handle, lhost, int(lport))
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(a.port_file + ".tmp", a.port_file)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    while not stop.is_set():
        write_stats()
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    write_stats()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
