#!/usr/bin/env python3
"""A BitTorrent tracker for the tests: answers GET /announce as opentracker and private-tracker
software do, with an empty bencoded peer list, `interval` 1800 s and `min interval` 60 s (so a
later announce is a forced one, and a client that honours the min interval holds back a forced
announce on an endpoint that announced within the minute), and logs, one JSON line each, the
time, the `port=` and the `event=` of every announce. On 127.0.0.1, or on `--address` inside a
network namespace the test made; it stops when its parent test stops it."""
import argparse
import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--log", required=True)
    options = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/announce":
                self.send_error(404)
                return
            query = urllib.parse.parse_qs(url.query)
            record = {"time": time.time(), "port": int(query.get("port", ["0"])[0]), "event": query.get("event", [""])[0]}
            with open(options.log, "a") as log:
                log.write(json.dumps(record) + "\n")
            body = b"d8:intervali1800e12:min intervali60e5:peerslee"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments):
            pass

    server = HTTPServer((options.address, options.port), Handler)
    with open(options.log, "a") as log:
        log.write(json.dumps({"ready": True}) + "\n")
    server.serve_forever()


main()
