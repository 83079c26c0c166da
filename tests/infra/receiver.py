#!/usr/bin/env python3
"""receiver.py - a loopback HTTP receiver for the agent's webhook and
notification tests: every request (GET or POST) is appended to OUT as one
JSON line {"t", "method", "path", "query", "headers", "body", "status"};
prints its port on stdout once it listens.

    receiver.py OUT [--fail PREFIX:COUNT[:RETRY_AFTER]]... [--secret WHSEC]...

--fail: the first COUNT requests whose path starts with PREFIX are answered
503 (with Retry-After: RETRY_AFTER seconds when given; COUNT -1 = always).
--secret: webhook-signature is checked against each Standard Webhooks
secret; "valid" in the record lists, per secret, whether one of the
signatures is that secret's."""
import base64, hashlib, hmac, http.server, json, sys, time, urllib.parse

out = sys.argv[1]
fails, secrets = [], []
args = sys.argv[2:]
while args:
    opt, val = args[0], args[1]
    args = args[2:]
    if opt == "--fail":
        parts = val.split(":")
        fails.append([parts[0], int(parts[1]), parts[2] if len(parts) > 2 else None])
    elif opt == "--secret":
        secrets.append(base64.b64decode(val[len("whsec_"):] if val.startswith("whsec_") else val))
    else:
        sys.exit("receiver.py: unknown option " + opt)


class H(http.server.BaseHTTPRequestHandler):
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urllib.parse.urlsplit(self.path)
        rec = {"t": time.time(), "method": self.command, "path": urllib.parse.unquote(u.path),
               "query": urllib.parse.parse_qs(u.query), "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("utf-8", "replace"), "status": 200}
        if secrets and "webhook-signature" in self.headers:
            mid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
            sigs = self.headers["webhook-signature"].split(" ")
            rec["valid"] = []
            for key in secrets:
                want = "v1," + base64.b64encode(hmac.new(key, b"%s.%s.%s" % (mid.encode(), ts.encode(), body),
                                                         hashlib.sha256).digest()).decode()
                rec["valid"].append(any(hmac.compare_digest(s, want) for s in sigs))
        retry_after = None
        for f in fails:
            if rec["path"].startswith(f[0]) and f[1] != 0:
                f[1] -= 1 if f[1] > 0 else 0
                rec["status"], retry_after = 503, f[2]
                break
        with open(out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        self.send_response(rec["status"])
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = handle_any

    def log_message(self, *a):
        pass


s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
