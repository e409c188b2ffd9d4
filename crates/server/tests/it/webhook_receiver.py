"""A webhook receiver for the black-box tests: it verifies every delivery with the
`standardwebhooks` package from PyPI and logs what it received.

Usage: webhook_receiver.py DIR

It listens on 127.0.0.1 (a port of its own), writes the port to DIR/port, and for
every POST reads the endpoint's secrets from DIR/secrets (one per line; the test
writes them once it has created the endpoint), checks the delivery with each, checks
that the same delivery with an altered body and with a timestamp an hour old are
refused, and appends one JSON line to DIR/log.jsonl. It answers 500 to the first N
deliveries when DIR/fail_first holds N, 400 to one that does not verify, else 200.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

DIR = sys.argv[1]
LOCK = threading.Lock()
SEEN = {"count": 0}


def read(name, default=""):
    try:
        with open(os.path.join(DIR, name)) as f:
            return f.read()
    except FileNotFoundError:
        return default


def verifies(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        secrets = [s for s in read("secrets").split() if s]
        verified = [verifies(s, body, headers) for s in secrets]
        altered = any(verifies(s, body + b" ", headers) for s in secrets)
        old = dict(headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
        stale = any(verifies(s, body, old) for s in secrets)
        with LOCK:
            SEEN["count"] += 1
            n = SEEN["count"]
            fail_first = int(read("fail_first", "0") or "0")
            ok = any(verified)
            status = 500 if n <= fail_first else (200 if ok else 400)
            try:
                event = json.loads(body)
            except ValueError:
                event = None
            line = {
                "n": n,
                "status": status,
                "verified": verified,
                "altered_accepted": altered,
                "stale_accepted": stale,
                "signatures": headers.get("webhook-signature", "").count("v1,"),
                "webhook_id": headers.get("webhook-id"),
                "event": event,
            }
            with open(os.path.join(DIR, "log.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
