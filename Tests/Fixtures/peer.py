#!/usr/bin/env python3
"""A peer on the lab's "internet" side, for portsync's tests and benchmarks, meant to run inside
a network namespace the test created: it dials `--to`:`--port` (from `--source`, if given), a new
non-blocking attempt every `--every` seconds (each given up after `--patience`; at most
`--within` seconds in all), until one completes its TCP handshake. It then prints one JSON line,
{"connected": <Unix time the handshake completed, or null>, "attempts": n, "failures": {errno
name: count}}, keeps that connection open for `--hold` seconds or until the other end closes it
(printing {"closed": <time>} then), and exits. Nothing is sent on the connection."""
import argparse
import errno
import json
import selectors
import socket
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--to", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source")
    parser.add_argument("--every", type=float, default=0.005)
    parser.add_argument("--patience", type=float, default=1.0)
    parser.add_argument("--within", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=0.0)
    options = parser.parse_args()

    selector = selectors.DefaultSelector()
    failures = {}
    attempts = 0
    connected, winner = None, None
    deadline = time.monotonic() + options.within
    next_attempt = time.monotonic()

    def failed(number):
        name = errno.errorcode.get(number, str(number))
        failures[name] = failures.get(name, 0) + 1

    while winner is None and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_attempt:
            attempt = socket.socket()
            attempt.setblocking(False)
            if options.source:
                attempt.bind((options.source, 0))
            result = attempt.connect_ex((options.to, options.port))
            attempts += 1
            if result in (0, errno.EINPROGRESS):
                selector.register(attempt, selectors.EVENT_WRITE, now)
            else:
                failed(result)
                attempt.close()
            next_attempt = now + options.every
        for key, started in list((key, key.data) for key in selector.get_map().values()):
            if now - started > options.patience:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                failed(errno.ETIMEDOUT)
        wait = max(0.0, min(next_attempt, deadline) - time.monotonic())
        for key, _ in selector.select(timeout=wait):
            attempt = key.fileobj
            selector.unregister(attempt)
            result = attempt.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if result == 0 and winner is None:
                connected, winner = time.time(), attempt
            else:
                if result:
                    failed(result)
                attempt.close()
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    print(json.dumps({"connected": connected, "attempts": attempts, "failures": failures}), flush=True)
    if winner is None:
        return
    winner.setblocking(True)
    winner.settimeout(options.hold)
    try:
        if options.hold > 0 and winner.recv(1) == b"":
            print(json.dumps({"closed": time.time()}), flush=True)
    except (socket.timeout, ConnectionError):
        pass
    winner.close()


if __name__ == "__main__":
    main()
