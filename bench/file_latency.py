#!/usr/bin/env python3
"""Reaction latency of the ProtonVPN-file path: from the file's close-after-write to
qBittorrent's own preferences showing the new port (polled by this script over its own
keep-alive connection, so the figure includes up to one poll of granularity, ~0.3 ms).
Also the daemon's resident memory after start and after the changes.

Usage: bench/file_latency.py [--changes N] [--static]"""
import argparse
import statistics
import time

import qbtlab


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--static", action="store_true", help="build with -static-stdlib")
    args = parser.parse_args()

    binary = qbtlab.build(static=args.static)
    qbittorrent = qbtlab.QBittorrent()
    daemon = None
    try:
        first = qbtlab.free_port()
        daemon = qbtlab.Portsync(binary, qbittorrent)
        daemon.write_port(str(first))
        if not daemon.wait_for_log(f"listen_port {first} applied and verified"):
            raise RuntimeError("the daemon did not apply the first port:\n" + daemon.log())
        startup_ms = (time.monotonic() - daemon.started) * 1000
        time.sleep(0.5)
        rss_start = qbtlab.rss_kib(daemon.process.pid)

        latencies = []
        for index in range(args.changes):
            port = 30000 + index
            daemon.write_port(str(port))
            written = time.perf_counter()
            while qbittorrent.listen_port() != port:
                pass
            latencies.append((time.perf_counter() - written) * 1000)
            time.sleep(0.05)
        time.sleep(0.5)
        rss_end = qbtlab.rss_kib(daemon.process.pid)
        peak = qbtlab.peak_rss_kib(daemon.process.pid)

        print(f"binary: {binary}")
        print(f"changes: {len(latencies)}")
        print(f"file close-after-write -> qBittorrent shows the port: median {statistics.median(latencies):.2f} ms, "
              f"p95 {qbtlab.percentile(latencies, 0.95):.2f} ms, max {max(latencies):.2f} ms, min {min(latencies):.2f} ms")
        print(f"startup (exec -> first port applied and verified): {startup_ms:.0f} ms")
        print(f"resident memory: {rss_start / 1024:.1f} MiB after start, {rss_end / 1024:.1f} MiB after "
              f"{len(latencies)} changes, peak {peak / 1024:.1f} MiB")
    finally:
        if daemon:
            daemon.stop()
        qbittorrent.stop()


if __name__ == "__main__":
    main()
