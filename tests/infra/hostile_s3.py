#!/usr/bin/env python3
"""hostile_s3.py - an S3 store that means harm, for coffer's tests.

A reverse proxy in front of a real S3 server (the Swift of swift-s3-up.sh):
requests go through byte for byte (Host header included, so SigV4
signatures made for the proxy's address stay valid), and the answers are
altered the way a broken or malicious store would alter them, one --mode
per run:

  huge-body     a GET of a snapshot (".../snapshots/<64 hex>") is answered
                200 with --huge-bytes (default 50 GiB) of zeros, streamed
                chunked (no length announced), or with that Content-Length
                when --announce is given; sent for as long as the client
                reads
  trickle       a GET of a snapshot gets the real answer at one byte per
                --trickle-interval seconds (default 1)
  repeat-token  listing pages (ListObjectsV2) after the first carry the
                first page's NextContinuationToken again
  dup-keys      every object in every listing page is named twice
  endless-pages a listing never ends: its last page says there is more, and
                asking for more gets an empty page that says the same

--times N limits huge-body and trickle to the first N matching requests
(0, the default: all of them).  Every alteration is logged as one line to
--log FILE ("trickle start GET /b/repo/snapshots/..."), so a test can wait
for it.  The listening port is printed on stdout (and written to
--port-file).  Python 3 standard library only.

Usage:
  hostile_s3.py --upstream http://127.0.0.1:16080 --mode MODE [--listen 127.0.0.1:0]
                [--port-file F] [--log F] [--times N] [--huge-bytes N] [--announce]
                [--trickle-interval S]
"""

import argparse
import http.client
import os
import re
import sys
import threading
import time
import urllib.parse
from proxylib import HOP_BY_HOP, ProxyHandler, Server

MODES = ("huge-body", "trickle", "repeat-token", "dup-keys", "endless-pages")
SNAPSHOT_PATH = re.compile(r"/snapshots/[0-9a-f]{64}$")
HOSTILE_TOKEN = "hostile-page-"


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.matched = 0     # huge-body / trickle requests seen
        self.pages = 0       # endless-pages: synthetic pages served
        self.first_token = {}  # repeat-token: prefix -> the first token the store gave

    def take(self):
        """Whether this matching request is altered (--times)."""
        with self.lock:
            self.matched += 1
            return not self.args.times or self.matched <= self.args.times

    def log(self, line):
        if self.args.log:
            with self.lock, open(self.args.log, "a") as f:
                f.write(line + "\n")


class Handler(ProxyHandler):
    server_version = "hostile_s3"

    def log_message(self, fmt, *a):
        pass

    def head_block(self, status, reason, headers, extra=()):
        out = ["HTTP/1.1 %d %s" % (status, reason)]
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                out.append("%s: %s" % (k, v))
        out.extend(extra)
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def reply(self, status, reason, headers, body):
        extra = []
        if self.command != "HEAD" and status not in (204, 304):
            extra.append("Content-Length: %d" % len(body))
        else:
            extra.extend("%s: %s" % (k, v) for k, v in headers if k.lower() == "content-length")
        self.wfile.write(self.head_block(status, reason, headers, extra) + body)
        self.wfile.flush()

    def is_listing(self, query):
        return self.command == "GET" and query.get("list-type") == ["2"]

    def handle_any(self):
        st = self.state
        mode = st.args.mode
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self.read_chunked()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            snapshot_get = self.command == "GET" and SNAPSHOT_PATH.search(url.path) and not url.query
            if mode == "huge-body" and snapshot_get and st.take():
                return self.huge_body(url.path)
            if mode == "endless-pages" and self.is_listing(query):
                token = query.get("continuation-token", [""])[0]
                if token.startswith(HOSTILE_TOKEN):
                    return self.empty_page(query)
            try:
                status, reason, headers, data = self.forward(body)
            except (OSError, http.client.HTTPException) as e:
                self.close_connection = True
                self.reply(502, "Bad Gateway", [("Content-Type", "text/plain")],
                           b"hostile_s3: upstream failed: %s\n" % str(e).encode())
                return
            if mode == "trickle" and snapshot_get and status == 200 and st.take():
                return self.trickle(url.path, status, reason, headers, data)
            if self.is_listing(query) and status == 200:
                data = self.alter_listing(mode, query, data)
            self.reply(status, reason, headers, data)
        except OSError:  # the client went away: that is what a bounded client does
            self.close_connection = True

    def huge_body(self, path):
        n = self.state.args.huge_bytes
        announce = self.state.args.announce
        hdrs = [("Content-Type", "application/octet-stream")]
        extra = ["Content-Length: %d" % n] if announce else ["Transfer-Encoding: chunked"]
        self.close_connection = True
        self.state.log("huge-body start GET %s" % path)
        self.wfile.write(self.head_block(200, "OK", hdrs, extra))
        piece = bytes(1 << 20)
        sent = 0
        try:
            while sent < n:
                k = min(len(piece), n - sent)
                if announce:
                    self.wfile.write(piece[:k])
                else:
                    self.wfile.write(b"%x\r\n" % k + piece[:k] + b"\r\n")
                sent += k
            if not announce:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            self.state.log("huge-body end GET %s: %d bytes sent" % (path, sent))

    def trickle(self, path, status, reason, headers, data):
        self.close_connection = True
        self.state.log("trickle start GET %s (%d bytes)" % (path, len(data)))
        self.wfile.write(self.head_block(status, reason, headers, ["Content-Length: %d" % len(data)]))
        self.wfile.flush()
        sent = 0
        try:
            for i in range(len(data)):
                time.sleep(self.state.args.trickle_interval)
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                sent += 1
        finally:
            self.state.log("trickle end GET %s: %d of %d bytes sent" % (path, sent, len(data)))

    def alter_listing(self, mode, query, data):
        if mode == "dup-keys":
            n = len(re.findall(rb"<Contents>.*?</Contents>", data, flags=re.S))
            self.state.log("dup-keys: %d objects named twice" % n)
            return re.sub(rb"(<Contents>.*?</Contents>)", rb"\1\1", data, flags=re.S)
        if mode == "repeat-token":
            m = re.search(rb"<NextContinuationToken>(.*?)</NextContinuationToken>", data, flags=re.S)
            if not m:
                return data
            prefix = query.get("prefix", [""])[0]
            with self.state.lock:
                first = self.state.first_token.setdefault(prefix, m.group(1))
            if first != m.group(1):
                self.state.log("repeat-token: page token replaced for prefix %s" % prefix)
            return data[:m.start(1)] + first + data[m.end(1):]
        if mode == "endless-pages" and re.search(rb"<IsTruncated>false</IsTruncated>", data):
            self.state.log("endless-pages: last page turned into one that says there is more")
            data = data.replace(b"<IsTruncated>false</IsTruncated>",
                                b"<IsTruncated>true</IsTruncated><NextContinuationToken>%s0"
                                b"</NextContinuationToken>" % HOSTILE_TOKEN.encode())
        return data

    def empty_page(self, query):
        with self.state.lock:
            self.state.pages += 1
            n = self.state.pages
        if n % 100 == 1:
            self.state.log("endless-pages: empty page %d" % n)
        prefix = query.get("prefix", [""])[0]
        doc = ('<?xml version="1.0" encoding="UTF-8"?>\n'
               '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               '<Prefix>%s</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>'
               '<IsTruncated>true</IsTruncated><NextContinuationToken>%s%d</NextContinuationToken>'
               '</ListBucketResult>' % (prefix, HOSTILE_TOKEN, n)).encode()
        self.reply(200, "OK", [("Content-Type", "application/xml")], doc)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the real server")
    ap.add_argument("--mode", required=True, choices=MODES)
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free one)")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--times", type=int, default=0)
    ap.add_argument("--huge-bytes", type=int, default=50 << 30)
    ap.add_argument("--announce", action="store_true")
    ap.add_argument("--trickle-interval", type=float, default=1.0)
    args = ap.parse_args()

    state = State(args)
    state.upstream = urllib.parse.urlsplit(args.upstream)
    Handler.state = state
    host, port = args.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    port = srv.server_address[1]
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
