"""One origin for both viewers of benchmarks/viewer.py: OHIF's prebuilt dist and VetPACS.

    python benchmarks/viewer_proxy.py --port P --upstream-port G --dist DIR --config FILE

OHIF's files (the first path segment names an entry of ``--dist``, or ``/viewer...``, its
single-page routes, answered with index.html) are served from the dist, ``/app-config.js`` from
``--config``; every other path is forwarded to VetPACS's gunicorn on ``--upstream-port``, as a
clinic's reverse proxy does. So OHIF reads VetPACS's DICOMweb from its own origin with the staff
session's cookie: no CORS, no API key in a page, no change to VetPACS. Both viewers go through
this same proxy, so what it costs, it costs both.
"""

import argparse
import http.client
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")


def handler_for(dist, config, upstream_port):
    entries = {p.name for p in dist.iterdir()}
    local = threading.local()  # one keep-alive connection to gunicorn per proxy thread

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.handle_any()

        def do_HEAD(self):
            self.handle_any()

        def do_POST(self):
            self.handle_any()

        def handle_any(self):
            path = self.path.split("?", 1)[0]
            first = path.lstrip("/").split("/", 1)[0]
            if path == "/app-config.js":
                self.file(config)
            elif first == "viewer" or (first in entries and first != ""):
                target = (dist / path.lstrip("/")).resolve()
                if dist in target.parents and target.is_file():
                    self.file(target)
                else:  # a single-page route
                    self.file(dist / "index.html", cache=False)
            else:
                self.forward()

        def file(self, target, cache=True):
            body = target.read_bytes()
            self.send_response(200)
            self.send_header(
                "Content-Type", mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            )
            self.send_header("Content-Length", str(len(body)))
            # Kept by the browser as a clinic's web server would let it keep a versioned bundle.
            self.send_header("Cache-Control", "max-age=3600" if cache else "no-cache")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            for attempt in (1, 2):  # a kept connection gunicorn closed meanwhile: once more, new
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    if attempt == 2:
                        raise
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler_for(args.dist.resolve(), args.config, args.upstream_port)
    )
    server.daemon_threads = True
    print(f"viewer proxy on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
