"""The measurements behind bench/run. Each returns a dict of figures; none asserts anything.
Traffic stays on 127.0.0.1 or inside network namespaces made here."""
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

import clients
import qbtlab


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0]] = float(value)
    return values


def sizes(binary):
    stripped = tempfile.mktemp(prefix="portsync-stripped-")
    subprocess.run(["strip", "-o", stripped, binary], check=True)
    result = {"binary_bytes": os.path.getsize(binary), "stripped_bytes": os.path.getsize(stripped)}
    os.unlink(stripped)
    return result


def lone_changes(daemon, qbittorrent, changes, alone=None):
    """Close-after-write -> the read-back verified it, in ms, for `changes` ports one at a time:
    the daemon's own line, read through a pipe as it is written, so that nothing asks qBittorrent
    meanwhile (a poll would queue in front of portsync's request in its one-threaded Web UI).
    With a list `alone` (plain HTTP only), each change is followed by the same two requests from
    a minimal client, appended there in ms: qBittorrent's own share, taken at the same moments
    (the disk's fsync time, which qBittorrent pays in every setPreferences, moves both alike)."""
    latencies = []
    for index in range(changes):
        port = 30000 + index
        mark = len(daemon.lines)
        daemon.write_port(str(port))
        written = time.perf_counter()
        verified = daemon.wait_for_line(f"listen_port {port} applied and verified", after=mark, seconds=5)
        if verified is None or qbittorrent.listen_port() != port:
            raise RuntimeError(f"port {port} was not applied:\n" + daemon.log())
        latencies.append((verified - written) * 1000)
        time.sleep(0.1)  # lone changes: closer ones count as a burst and are applied once it settles
        if alone is not None:
            alone.append(qbittorrent.apply_raw(31000 + index) * 1000)
            time.sleep(0.1)
    return latencies


def apply_latency(binary, https, changes=50):
    """Close-after-write -> verified over plain HTTP or over HTTPS (qBittorrent's own WebUI
    HTTPS, its certificate as ca_file), lone changes."""
    qbittorrent = qbtlab.QBittorrent(https=https)
    daemon = None
    try:
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "file"}, follow=True)
        first = qbtlab.free_port()
        daemon.write_port(str(first))
        if not daemon.wait_for_log(f"listen_port {first} applied and verified"):
            raise RuntimeError("the daemon did not apply the first port:\n" + daemon.log())
        return {"latency_ms": lone_changes(daemon, qbittorrent, changes)}
    finally:
        if daemon:
            daemon.stop()
        qbittorrent.stop()


def file_mode(binary, changes=50, idle_seconds=300, rewrites=10_000, applied_changes=10_000):
    """Startup, file latency, idle cost, memory after many changes and after a burst."""
    qbittorrent = qbtlab.QBittorrent()
    metrics_port = qbtlab.free_port()
    daemon = None
    result = {}
    try:
        first = qbtlab.free_port()
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "file",
                                                        "PORTSYNC_DAEMON_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"},
                                 follow=True)
        daemon.write_port(str(first))
        if not daemon.wait_for_log(f"listen_port {first} applied and verified"):
            raise RuntimeError("the daemon did not apply the first port:\n" + daemon.log())
        result["startup_ms"] = (time.monotonic() - daemon.started) * 1000
        time.sleep(0.5)
        result["rss_start_kib"] = qbtlab.rss_kib(daemon.process.pid)

        alone = []
        latencies = lone_changes(daemon, qbittorrent, changes, alone=alone)
        result["latency_ms"] = latencies
        result["qbittorrent_ms"] = alone
        settle = 30000 + changes
        daemon.write_port(str(settle))  # agree with qBittorrent again before the idle part
        if daemon.wait_for_line(f"listen_port {settle}", seconds=5) is None:
            raise RuntimeError("the daemon did not settle:\n" + daemon.log())

        # Idle: nothing changes; the only expected wake-up is the drift check (every 300 s).
        before_requests = metrics(metrics_port)["portsync_qbittorrent_requests_total"]
        time.sleep(1)  # the scrape's own wake-ups are over
        switches = qbtlab.context_switches(daemon.process.pid)
        cpu = qbtlab.cpu_seconds(daemon.process.pid)
        time.sleep(idle_seconds)
        after_switches = qbtlab.context_switches(daemon.process.pid)
        result["idle"] = {"seconds": idle_seconds,
                          "wakeups": after_switches[0] - switches[0],
                          "cpu_ms": (qbtlab.cpu_seconds(daemon.process.pid) - cpu) * 1000,
                          "http_requests": metrics(metrics_port)["portsync_qbittorrent_requests_total"] - before_requests,
                          "packets": 0}

        # Memory across many applied changes: each one waits until qBittorrent has it.
        rss_before = qbtlab.rss_kib(daemon.process.pid)
        applies = metrics(metrics_port)["portsync_applies_total"]
        for index in range(applied_changes):
            daemon.write_port(str(20000 + index % 20000))
            target = applies + index + 1
            deadline = time.monotonic() + 5
            while metrics(metrics_port)["portsync_applies_total"] < target and time.monotonic() < deadline:
                time.sleep(0.0005)
        result["changes_rss_kib"] = (rss_before, qbtlab.rss_kib(daemon.process.pid))
        result["changes_applied"] = int(metrics(metrics_port)["portsync_applies_total"] - applies)

        # A burst: rewrites as fast as the file system takes them.
        applies = metrics(metrics_port)["portsync_applies_total"]
        rss_before = qbtlab.rss_kib(daemon.process.pid)
        last = 0
        for index in range(rewrites):
            last = 40000 + index % 20000
            daemon.write_port(str(last))
        deadline = time.monotonic() + 30
        while qbittorrent.listen_port() != last and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        result["burst"] = {"rewrites": rewrites, "ended_on_last": qbittorrent.listen_port() == last,
                           "applies": int(metrics(metrics_port)["portsync_applies_total"] - applies),
                           "rss_kib": (rss_before, qbtlab.rss_kib(daemon.process.pid))}
        result["peak_rss_kib"] = qbtlab.peak_rss_kib(daemon.process.pid)
        return result
    finally:
        if daemon:
            daemon.stop()
        qbittorrent.stop()


def natpmp_mode(binary, idle_seconds=300, changes=50, flaps=10, reconnects=20):
    """Root only: steady state with the default lease, gateway port changes, link flaps."""
    lab = qbtlab.NetworkLab()
    qbittorrent = daemon = None
    result = {}
    try:
        lab.start_gateway()
        lab.enter_client()
        qbittorrent = qbtlab.QBittorrent()
        metrics_port = qbtlab.free_port()
        environment = {"PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0",
                       "PORTSYNC_DAEMON_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
        daemon = qbtlab.Portsync(binary, qbittorrent, environment)
        if not daemon.wait_for_log("listen_port 40000 applied and verified"):
            raise RuntimeError("no mapping applied:\n" + daemon.log())
        time.sleep(2)

        before = metrics(metrics_port)["portsync_qbittorrent_requests_total"]
        time.sleep(1)
        requests = len(lab.gateway_requests())
        switches = qbtlab.context_switches(daemon.process.pid)
        cpu = qbtlab.cpu_seconds(daemon.process.pid)
        time.sleep(idle_seconds)
        after_switches = qbtlab.context_switches(daemon.process.pid)
        result["idle"] = {"seconds": idle_seconds, "wakeups": after_switches[0] - switches[0],
                          "cpu_ms": (qbtlab.cpu_seconds(daemon.process.pid) - cpu) * 1000,
                          "packets": len(lab.gateway_requests()) - requests,
                          "http_requests": metrics(metrics_port)["portsync_qbittorrent_requests_total"] - before}
        daemon.stop()

        # Port changes at the gateway, with a 1 s renewal so that there are many of them.
        daemon = qbtlab.Portsync(binary, qbittorrent, {**environment, "PORTSYNC_NATPMP_LEASE_SECONDS": "4",
                                                       "PORTSYNC_NATPMP_RENEW_SECONDS": "1"})
        time.sleep(1)
        latencies = []
        for index in range(changes):
            current = qbittorrent.listen_port()
            lab.change_ports()
            deadline = time.monotonic() + 10
            while qbittorrent.listen_port() == current and time.monotonic() < deadline:
                pass
            seen = time.time()
            new = qbittorrent.listen_port()
            replies = [r for r in lab.gateway_requests() if r.get("external") == new and r.get("op") == "tcp"]
            if replies:
                latencies.append((seen - replies[0]["t"]) * 1000)
        result["gateway_change_ms"] = latencies

        recoveries = []
        for _ in range(flaps):
            port = qbittorrent.listen_port()
            lab.set_tunnel(False)
            daemon.wait_for_log("wg0 is down: NAT-PMP paused", seconds=5)
            time.sleep(0.5)
            mark = len(daemon.log())
            up = time.time()
            lab.set_tunnel(True)
            deadline = time.monotonic() + 15
            line = None
            while time.monotonic() < deadline and line is None:
                line = next((candidate for candidate in daemon.log()[mark:].splitlines()
                             if "forwards port" in candidate), None)
                time.sleep(0.002)
            if line:
                recoveries.append((qbtlab.log_time(line) - up) * 1000)
        result["link_up_ms"] = recoveries

        # wg-quick reconnects: routes 300 ms after link-up; the first request after the route.
        first_requests, externals = [], set()
        rules = qbtlab.RuleWatcher()
        lab.recreate_wg_quick(0)  # from here on the tunnel is a wg-quick one
        time.sleep(1.5)
        for _ in range(reconnects):
            mark = len(lab.gateway_requests())
            seen = len(rules.times)
            gone = lab.recreate_wg_quick(0.3)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (len(lab.gateway_requests()) == mark or len(rules.times) == seen):
                time.sleep(0.005)
            requests = [r for r in lab.gateway_requests()[mark:] if r["t"] > gone]
            if requests and len(rules.times) > seen:
                first_requests.append((requests[0]["t"] - rules.times[seen]) * 1000)
            time.sleep(1.5)
            externals.update(r["external"] for r in lab.gateway_requests()[mark:] if "external" in r)
        rules.close()
        result["wg_quick_ms"] = first_requests
        result["wg_quick_ports"] = sorted(externals)
        result["wg_quick_lapsed"] = "no longer forwarded" in daemon.log()
        result["rss_kib"] = qbtlab.rss_kib(daemon.process.pid)
        return result
    finally:
        if daemon:
            daemon.stop()
        if qbittorrent:
            qbittorrent.stop()
        lab.close()


def other_sources(binary, reconnects=20):
    """Root only: per source, from the moment the source has its port to qBittorrent verified on it.
    Perfect Privacy: a new tunnel address (another server) -> its first port verified. Static
    and command: exec -> the port verified (nothing to wait for but portsync itself)."""
    lab = qbtlab.NetworkLab()
    qbittorrent = daemon = None
    result = {}
    try:
        lab.enter_client()
        qbittorrent = qbtlab.QBittorrent()
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "perfectprivacy",
                                                       "PORTSYNC_PERFECTPRIVACY_INTERFACE": "wg0"})
        if not daemon.wait_for_log("listen_port 10002 applied and verified"):
            raise RuntimeError("Perfect Privacy's port not applied:\n" + daemon.log())
        addresses = [("10.2.0.2", 10002), ("10.2.1.7", 10263)]
        latencies = []
        for index in range(reconnects):
            old, _ = addresses[index % 2]
            new, port = addresses[(index + 1) % 2]
            subprocess.run(["ip", "-n", lab.client, "addr", "del", old, "peer", "10.2.0.1/32", "dev", "wg0"], check=True)
            added = time.monotonic()
            subprocess.run(["ip", "-n", lab.client, "addr", "add", new, "peer", "10.2.0.1/32", "dev", "wg0"], check=True)
            deadline = time.monotonic() + 10
            while qbittorrent.listen_port() != port and time.monotonic() < deadline:
                time.sleep(0.0005)
            if qbittorrent.listen_port() == port:
                latencies.append((time.monotonic() - added) * 1000)
        result["perfectprivacy_ms"] = latencies
        daemon.stop()
        daemon = None

        for name, environment in [("static", {"PORTSYNC_SOURCE_STRATEGY": "static"}),
                                  ("command", {"PORTSYNC_SOURCE_STRATEGY": "command"})]:
            times = []
            for _ in range(5):
                port = qbtlab.free_port()
                extra = {**environment, "PORTSYNC_STATIC_PORT": str(port),
                         "PORTSYNC_COMMAND_ARGV": json.dumps(["echo", str(port)])}
                started = time.monotonic()
                daemon = qbtlab.Portsync(binary, qbittorrent, extra)
                if daemon.wait_for_log(f"listen_port {port} applied and verified"):
                    times.append((time.monotonic() - started) * 1000)
                daemon.stop()
                daemon = None
            result[f"{name}_ms"] = times
        return result
    finally:
        if daemon:
            daemon.stop()
        if qbittorrent:
            qbittorrent.stop()
        lab.close()


def memcheck(debug_binary):
    """The end-to-end file case under valgrind's memcheck: start, two port changes, SIGTERM."""
    qbittorrent = qbtlab.QBittorrent()
    home = tempfile.mkdtemp(prefix="portsync-memcheck-")
    try:
        runtime = os.path.join(home, "run")
        port_file = os.path.join(runtime, "Proton", "VPN", "forwarded_port")
        os.makedirs(os.path.dirname(port_file))
        with open(os.path.join(home, "password"), "w") as f:
            f.write(qbtlab.PASSWORD)
        with open(port_file, "w") as f:
            f.write(str(qbtlab.free_port()))
        log_path = os.path.join(home, "valgrind.log")
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "XDG_RUNTIME_DIR": runtime, "PORTSYNC_SOURCE_STRATEGY": "file",
               "PORTSYNC_QBITTORRENT_URL": f"http://127.0.0.1:{qbittorrent.webui_port}",
               "PORTSYNC_QBITTORRENT_PASSWORD_FILE": os.path.join(home, "password"),
               "PORTSYNC_DAEMON_STATE_FILE": os.path.join(home, "state.json")}
        output = open(os.path.join(home, "daemon.log"), "w")
        process = subprocess.Popen(["valgrind", "--tool=memcheck", "--leak-check=full", f"--log-file={log_path}",
                                    debug_binary, "run"], env=env, stdout=output, stderr=output, restore_signals=True)
        def applied(count):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with open(os.path.join(home, "daemon.log")) as f:
                    if f.read().count("applied and verified") >= count:
                        return True
                time.sleep(0.1)
            return False
        applied(1)
        for index in range(2):
            with open(port_file, "w") as f:
                f.write(str(qbtlab.free_port()))
            applied(index + 2)
        process.terminate()
        process.wait(120)
        with open(log_path) as f:
            report = f.read()
        found = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", report)
        possibly = re.search(r"possibly lost: ([\d,]+) bytes in ([\d,]+) blocks", report)
        # With --leak-check=full, "possibly lost" records count as errors too; the real ones are these:
        memory_errors = len(re.findall(r"== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free)", report))
        return {"definitely_lost": found.group(0) if found else "definitely lost: 0 bytes (no leak summary: nothing was lost)",
                "possibly_lost": possibly.group(0) if possibly else "possibly lost: 0 bytes",
                "memory_errors": memory_errors, "exit": process.returncode}
    finally:
        qbittorrent.stop()
        subprocess.run(["rm", "-rf", home])


def summarize(values):
    return (f"median {statistics.median(values):.1f} ms, p95 {qbtlab.percentile(values, 0.95):.1f} ms, "
            f"max {max(values):.1f} ms ({len(values)} changes)") if values else "no data"


def four_clients(binary, changes=20):
    """Root only: two qbittorrent-nox, a transmission-daemon and deluged + deluge-web, each on a
    loopback address of its own, and portsync (`--trace`), all in a namespace with nothing but
    `lo`. Per change: close-after-write -> each client's "applied and verified" line, and when
    each client's first request went out after the first one's: by when its trace line came
    through the pipe (lines written together arrive together), by the daemon's own millisecond
    time stamps, and whether all four went out before any answer came back."""
    namespace = clients.LoopbackNamespace()
    home = tempfile.mkdtemp(prefix="portsync-bench-clients-")
    started, daemon = [], None
    try:
        namespace.enter()
        for make in (lambda: qbtlab.QBittorrent("127.0.0.2"), lambda: qbtlab.QBittorrent("127.0.0.3"),
                     lambda: clients.Transmission("127.0.0.4"), lambda: clients.Deluge(namespace)):
            started.append(make())
        main, tv, transmission, deluge = started
        for name, secret in [("password", qbtlab.PASSWORD), ("transmission-password", clients.TRANSMISSION_PASSWORD),
                             ("deluge-password", clients.DELUGE_WEB_PASSWORD)]:
            with open(os.open(os.path.join(home, name), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(secret)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(f'[qbittorrent.tv]\nurl = "http://127.0.0.1:{tv.webui_port}"\npassword_file = "{home}/password"\n'
                    f'[transmission]\nurl = "http://127.0.0.1:{transmission.rpc_port}"\nusername = "{clients.TRANSMISSION_USER}"\n'
                    f'password_file = "{home}/transmission-password"\n'
                    f'[deluge]\nurl = "http://127.0.0.1:{deluge.web_port}"\npassword_file = "{home}/deluge-password"\n')
        daemon = qbtlab.Portsync(binary, main, {"PORTSYNC_SOURCE_STRATEGY": "file", "PORTSYNC_CONFIG": f"{home}/config.toml"},
                                 home=home, arguments=["--trace"], follow=True)
        labels = ["qbittorrent", "qbittorrent.tv", "transmission", "deluge"]
        verified = {"qbittorrent": "qbittorrent.http: listen_port {} applied", "qbittorrent.tv": "qbittorrent.tv.http: listen_port {} applied",
                    "transmission": "transmission.http: Transmission: port {} applied", "deluge": "deluge.http: Deluge: port {} applied"}
        result = {"latency_ms": {label: [] for label in labels}, "start_ms": {label: [] for label in labels},
                  "spread_ms": [], "stamp_spread_ms": [], "sent_before_any_answer": 0}
        for index in range(changes + 1):  # the first one connects deluge-web to deluged: not counted
            port = 31000 + index
            mark = len(daemon.lines)
            daemon.write_port(str(port))
            written = time.perf_counter()
            for label in labels:
                done = daemon.wait_for_line(verified[label].format(port), after=mark, seconds=20)
                if done is None:
                    raise RuntimeError(f"{label} did not verify port {port}:\n" + daemon.log()[-4000:])
                if index:
                    result["latency_ms"][label].append((done - written) * 1000)
            with daemon.arrived:
                lines = daemon.lines[mark:]
            first, answered = {}, False
            for when, line in lines:
                answered = answered or ".http: ← " in line
                for label in labels:
                    if label not in first and f" {label}.http: → " in line:
                        first[label] = (when, qbtlab.log_time(line), answered)
            if index and len(first) == len(labels):
                earliest = min(when for when, _, _ in first.values())
                for label in labels:
                    result["start_ms"][label].append((first[label][0] - earliest) * 1000)
                result["spread_ms"].append((max(when for when, _, _ in first.values()) - earliest) * 1000)
                stamps = [stamp for _, stamp, _ in first.values()]
                result["stamp_spread_ms"].append((max(stamps) - min(stamps)) * 1000)
                result["sent_before_any_answer"] += not any(late for _, _, late in first.values())
            time.sleep(0.1)  # lone changes, not a burst
        pids = [main.process.pid, tv.process.pid, transmission.process.pid, deluge.daemon.pid, deluge.web.pid, daemon.process.pid]
        sockets = clients.require_loopback_only(pids, "the clients and portsync")
        result["listening"] = all(any(f"pid={pid}," in line and "LISTEN" in line and f":{port} " in line for line in sockets)
                                  for pid in pids[:4])
        return result
    finally:
        if daemon:
            daemon.stop()
        for client in reversed(started):
            client.stop()
        namespace.close()
        shutil.rmtree(home, ignore_errors=True)


class Tracker:
    """The tests' tracker (Tests/Fixtures/tracker.py: interval 1800, min interval 60, as real
    trackers answer) on 127.0.0.1, logging the time and port of every announce."""

    def __init__(self, directory):
        self.port = qbtlab.free_port()
        self.log_path = os.path.join(directory, "tracker.log")
        script = os.path.join(qbtlab.ROOT, "Tests", "Fixtures", "tracker.py")
        self.process = subprocess.Popen(["python3", script, "--port", str(self.port), "--log", self.log_path],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "ready" not in self._text():
            time.sleep(0.02)

    @property
    def announce_url(self):
        return f"http://127.0.0.1:{self.port}/announce"

    def _text(self):
        try:
            with open(self.log_path) as log:
                return log.read()
        except OSError:
            return ""

    def announces(self):
        return [json.loads(line) for line in self._text().splitlines() if '"port"' in line]

    def stop(self):
        qbtlab.terminate(self.process, grace=2)


def tracker_latency(binary, changes=10, spacing=4.0):
    """Close-after-write -> the tracker hears the new port (its announce with `port=`), in ms,
    for `changes` ports `spacing` seconds apart: each within the tracker's min interval of the
    one before, the case where an early re-announce is lost."""
    qbittorrent = qbtlab.QBittorrent()
    tracker = Tracker(qbittorrent.profile)
    daemon = None
    try:
        qbittorrent.add_torrent(tracker.announce_url)
        deadline = time.monotonic() + 20
        while not tracker.announces() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "file"}, follow=True)
        latencies, missed = [], 0
        for index in range(changes + 1):
            port = qbtlab.free_port()
            seen = len(tracker.announces())
            daemon.write_port(str(port))
            written = time.time()
            heard = None
            deadline = time.monotonic() + 10
            while heard is None and time.monotonic() < deadline:
                heard = next((a["time"] for a in tracker.announces()[seen:] if a["port"] == port), None)
                time.sleep(0.002)
            if index > 0:  # the first change only starts the series
                if heard is None:
                    missed += 1
                else:
                    latencies.append((heard - written) * 1000)
            time.sleep(spacing)
        return {"latency_ms": latencies, "missed": missed, "changes": changes}
    finally:
        if daemon:
            daemon.stop()
        tracker.stop()
        qbittorrent.stop()

