#!/usr/bin/env python3
"""faultproxy.py - an HTTP reverse proxy that misbehaves on purpose.

Sits between coffer and an S3 server on loopback and injects the failures a
real network and a real object store produce, so the tests can check that
coffer retries what is transient and fails cleanly otherwise:

  slowdown  answer 503 SlowDown (an S3 error document) without forwarding
  reset     drop the connection with a TCP RST; on odd occurrences before the
            request reaches the server, on even ones after it was carried out
            (the answer is lost, so the client must retry an operation that
            already happened)
  stall     forward, then say nothing for --stall-seconds (longer than the
            client's stall timeout), then close
  truncate  send the answer's headers with the full Content-Length but only
            half of the body, then close (only answers with a body count)

Each fault is given as --KIND N (every Nth request, counted over all
requests) or --KIND P% (each request with probability P, --seed for
repeatability).  Faults are checked in the order above; a request gets at
most one.  --max-in-a-row N spares a request (same method, path and range) that
failed N times running, as a throttling store lets a client through in the
end: with N below the client's attempts, a test cannot fail by bad luck.

Requests are forwarded byte for byte, Host header included, so SigV4
signatures made for the proxy's address stay valid.  Python 3 standard
library only.

Statistics (requests and faults per kind, and the most requests in flight at
once, per method) are rewritten to --stats FILE as JSON after every request;
the tests use max_in_flight["PUT"] to see how many uploads overlap.

Usage:
  faultproxy.py --upstream http://127.0.0.1:16080 [--listen 127.0.0.1:0]
                [--port-file F] [--stats F] [--slowdown N|P%] [--reset N|P%]
                [--stall N|P%] [--stall-seconds S] [--truncate N|P%]
                [--seed S] [--max-in-a-row N] [--quiet]
The listening port is printed on stdout (and written to --port-file).
"""

import argparse
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
from proxylib import HOP_BY_HOP, ProxyHandler, Server

KINDS = ("slowdown", "reset", "stall", "truncate")
SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate. (faultproxy)</Message></Error>')


class Rule:
    """When a fault kind fires: every Nth request, or with probability P."""

    def __init__(self, spec):
        self.every = 0
        self.prob = 0.0
        if spec.endswith("%"):
            self.prob = float(spec[:-1]) / 100.0
        else:
            self.every = int(spec)

    def fires(self, n, rng):
        if self.every:
            return n % self.every == 0
        return rng.random() < self.prob


class State:
    def __init__(self, args):
        self.args = args
        self.rules = {k: Rule(getattr(args, k)) for k in KINDS if getattr(args, k)}
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.n = 0
        self.counts = {"requests": 0, "by_method": {}, "faults": {k: 0 for k in KINDS},
                       "in_flight": {}, "max_in_flight": {}, "max_in_flight_total": 0,
                       "connections": 0, "upstream_errors": 0}
        self.total_in_flight = 0
        self.in_a_row = {}  # (method, path) -> faults it got in a row

    def begin(self, method, path):
        """Count the request in; return the fault it gets (or None) and its number."""
        with self.lock:
            self.n += 1
            c = self.counts
            c["requests"] += 1
            c["by_method"][method] = c["by_method"].get(method, 0) + 1
            c["in_flight"][method] = c["in_flight"].get(method, 0) + 1
            c["max_in_flight"][method] = max(c["max_in_flight"].get(method, 0),
                                             c["in_flight"][method])
            self.total_in_flight += 1
            c["max_in_flight_total"] = max(c["max_in_flight_total"], self.total_in_flight)
            fault = None
            for k in KINDS:
                r = self.rules.get(k)
                if r and r.fires(self.n, self.rng):
                    fault = k
                    break
            key = (method, path)
            limit = self.args.max_in_a_row
            if fault and limit and self.in_a_row.get(key, 0) >= limit:
                fault = None
            if fault:
                self.in_a_row[key] = self.in_a_row.get(key, 0) + 1
            else:
                self.in_a_row.pop(key, None)
            return fault, self.n

    def end(self, method, fault):
        with self.lock:
            c = self.counts
            c["in_flight"][method] -= 1
            self.total_in_flight -= 1
            if fault:
                c["faults"][fault] += 1
            self.save()

    def bump(self, key):
        with self.lock:
            self.counts[key] += 1

    def save(self):
        if not self.args.stats:
            return
        tmp = self.args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f, sort_keys=True)
        os.replace(tmp, self.args.stats)


class Handler(ProxyHandler):
    server_version = "faultproxy"

    def setup(self):
        super().setup()
        self.state.bump("connections")

    def log_message(self, fmt, *a):
        if not self.state.args.quiet:
            sys.stderr.write("faultproxy: " + (fmt % a) + "\n")

    def note(self, msg):
        if not self.state.args.quiet:
            sys.stderr.write("faultproxy: %s %s: %s\n" % (self.command, self.path, msg))

    def reset(self):
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def reply(self, status, reason, headers, body, send_len=None):
        out = ["HTTP/1.1 %d %s" % (status, reason)]
        has_len = False
        for k, v in headers:
            if k.lower() in HOP_BY_HOP:
                continue
            if k.lower() == "content-length":
                has_len = True
            out.append("%s: %s" % (k, v))
        if not has_len and self.command != "HEAD" and status not in (204, 304):
            out.append("Content-Length: %d" % len(body))
        if self.close_connection:
            out.append("Connection: close")
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + (body if send_len is None else body[:send_len]))
        self.wfile.flush()

    def handle_any(self):
        st = self.state
        method = self.command
        fault, n = st.begin(method, self.path + " " + self.headers.get("Range", ""))
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self.read_chunked()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fault == "slowdown":
                self.note("#%d 503 SlowDown" % n)
                self.reply(503, "Slow Down", [("Content-Type", "application/xml")], SLOWDOWN_BODY)
                return
            if fault == "reset" and n % 2:
                self.note("#%d reset before forwarding" % n)
                self.reset()
                return
            try:
                status, reason, headers, data = self.forward(body)
            except (OSError, http.client.HTTPException) as e:
                st.bump("upstream_errors")
                self.note("upstream failed: %s" % e)
                self.close_connection = True
                self.reply(502, "Bad Gateway", [("Content-Type", "text/plain")],
                           b"faultproxy: upstream failed\n")
                return
            if fault == "reset":
                self.note("#%d reset after forwarding (HTTP %d)" % (n, status))
                self.reset()
                return
            if fault == "stall":
                self.note("#%d stall for %.1f s" % (n, st.args.stall_seconds))
                time.sleep(st.args.stall_seconds)
                self.close_connection = True
                self.reply(status, reason, headers, data)
                return
            if fault == "truncate" and len(data) >= 2:
                self.note("#%d truncated to %d of %d bytes" % (n, len(data) // 2, len(data)))
                self.close_connection = True
                self.reply(status, reason, headers, data, send_len=len(data) // 2)
                return
            if fault == "truncate":
                fault = None  # nothing to truncate: not counted
            self.reply(status, reason, headers, data)
        except OSError as e:  # the client went away (after a stall, typically)
            self.note("client connection: %s" % e)
            self.close_connection = True
        finally:
            st.end(method, fault)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the real server")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free one)")
    ap.add_argument("--port-file")
    ap.add_argument("--stats")
    for k in KINDS:
        ap.add_argument("--" + k, metavar="N|P%")
    ap.add_argument("--stall-seconds", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-in-a-row", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    state = State(args)
    state.upstream = urllib.parse.urlsplit(args.upstream)
    Handler.state = state
    host, port = args.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    port = srv.server_address[1]
    state.save()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
