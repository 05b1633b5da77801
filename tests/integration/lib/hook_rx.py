#!/usr/bin/env python3
"""A webhook receiver for tests: on 127.0.0.1:PORT, appends the "id" of
every JSON alert POSTed to it to LOG (one a line) and answers 204."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n))
        with open(sys.argv[2], "a") as f:
            f.write(body["id"] + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
