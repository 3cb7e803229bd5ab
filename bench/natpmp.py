#!/usr/bin/env python3
"""NAT-PMP at steady state and after the tunnel comes back (needs root: it makes two network
namespaces, a test gateway and a locked-down qbittorrent-nox inside them; nothing leaves them).

- packets per hour at steady state (expected: exactly the renewals, a UDP and a TCP request
  every renew_seconds), and the daemon's wake-ups (voluntary context switches) and CPU time;
- link up -> qBittorrent verified on the port again (NAT-PMP mapped, qBittorrent reasserted),
  over several down/up flaps of wg0.

Usage: bench/natpmp.py [--seconds 180] [--flaps 10] [--static]"""
import argparse
import statistics
import time

import qbtlab


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180, help="steady-state window")
    parser.add_argument("--flaps", type=int, default=10)
    parser.add_argument("--static", action="store_true")
    args = parser.parse_args()

    binary = qbtlab.build(static=args.static)
    lab = qbtlab.NetworkLab()
    qbittorrent = daemon = None
    try:
        lab.start_gateway()
        lab.enter_client()
        qbittorrent = qbtlab.QBittorrent()
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "natpmp",
                                                        "PORTSYNC_NATPMP_INTERFACE": "wg0"})
        if not daemon.wait_for_log("listen_port 40000 applied and verified"):
            raise RuntimeError("no mapping applied:\n" + daemon.log())
        time.sleep(2)

        requests_before = len(lab.gateway_requests())
        switches_before = qbtlab.context_switches(daemon.process.pid)
        cpu_before = qbtlab.cpu_seconds(daemon.process.pid)
        started = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        requests = len(lab.gateway_requests()) - requests_before
        switches = [after - before for after, before in zip(qbtlab.context_switches(daemon.process.pid), switches_before)]
        cpu = qbtlab.cpu_seconds(daemon.process.pid) - cpu_before
        per_hour = 3600 / elapsed

        recoveries = []
        for _ in range(args.flaps):
            lab.set_tunnel(False)
            daemon.wait_for_log("wg0 is down: NAT-PMP paused", seconds=5)
            time.sleep(0.5)
            mark = len(daemon.log())
            up = time.time()
            lab.set_tunnel(True)
            deadline = time.monotonic() + 15
            line = None
            while time.monotonic() < deadline and line is None:
                for candidate in daemon.log()[mark:].splitlines():
                    if "listen_port 40000 applied and verified" in candidate:
                        line = candidate
                        break
                time.sleep(0.005)
            if line is None:
                raise RuntimeError("no recovery after link up:\n" + daemon.log()[mark:])
            recoveries.append((qbtlab.log_time(line) - up) * 1000)

        print(f"binary: {binary}")
        print(f"steady state over {elapsed:.0f} s (lease 60 s, renew 45 s):")
        print(f"  NAT-PMP requests: {requests} = {requests * per_hour:.0f} per hour (the renewals alone: {2 * 3600 / 45:.0f})")
        print(f"  wake-ups (voluntary context switches): {switches[0]} = {switches[0] * per_hour:.0f} per hour; "
              f"involuntary: {switches[1]}")
        print(f"  CPU time: {cpu * 1000:.0f} ms = {cpu * per_hour * 1000:.0f} ms per hour")
        print(f"link up -> qBittorrent verified on the port again ({len(recoveries)} flaps): "
              f"median {statistics.median(recoveries):.0f} ms, max {max(recoveries):.0f} ms, min {min(recoveries):.0f} ms")
        print(f"resident memory: {qbtlab.rss_kib(daemon.process.pid) / 1024:.1f} MiB")
    finally:
        if daemon:
            daemon.stop()
        if qbittorrent:
            qbittorrent.stop()
        lab.close()


if __name__ == "__main__":
    main()
