"""proxylib.py - what tests/infra/faultproxy.py and hostile_s3.py share: an HTTP
proxy handler that forwards a request to the upstream S3 (Swift) on a kept
connection, reads chunked request bodies, and a threading server that stays
quiet about clients that hang up (both proxies make them hang up on purpose).

A handler subclasses ProxyHandler and sets `state` (with `.upstream`, a parsed
URL) on the class, as both proxies do."""
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
              "trailer", "upgrade"}


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.upstream_conn = None

    def upstream(self):
        if self.upstream_conn is None:
            u = self.state.upstream
            self.upstream_conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300)
        return self.upstream_conn

    def forward(self, body):
        """Send the request on; return (status, reason, headers, body)."""
        for attempt in (1, 2):  # once more on a fresh connection if a kept one went stale
            conn = self.upstream()
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read() if self.command != "HEAD" else b""
                return resp.status, resp.reason, resp.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                self.upstream_conn = None
                if attempt == 2:
                    raise

    def read_chunked(self):
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        if self.upstream_conn:
            self.upstream_conn.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # resets, stalls and clients hanging up on a hostile answer are the point
