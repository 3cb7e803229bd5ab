"""Shared pieces of portsync's benchmarks: a locked-down qbittorrent-nox and a portsync daemon,
both started and stopped by PID, traffic on 127.0.0.1 only."""
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import sys
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

USERNAME = "admin"
# Its hash is in Tests/Fixtures/qBittorrent.conf, the locked-down profile the tests use too.
PASSWORD = "portsync-test-password"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(static=False):
    """Builds the release binary and returns its path: the static one as scripts/build-release
    makes it for installing and packaging, or one with the Swift runtime libraries shared."""
    if static:
        path = subprocess.run([os.path.join(ROOT, "scripts", "build-release"), ".build-static"], cwd=ROOT, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
        return os.path.join(ROOT, path)
    scratch = os.path.join(ROOT, ".build")
    subprocess.run(["swift", "build", "-c", "release", "--product", "portsync", "--scratch-path", scratch],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(scratch, "release", "portsync")


def clean_up_on_signals():
    """SIGTERM and SIGINT end the script through its `finally` blocks (Python's default for
    SIGTERM ends it at once, leaving the lab's namespaces and processes behind)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))


def terminate(process, grace):
    """SIGTERM to a child of ours, by its PID; SIGKILL if it is still there after `grace` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class QBittorrent:
    """qbittorrent-nox with the throwaway locked-down profile of
    shared/reference/qbittorrent-test-instance.md, written before it starts. `https`: its WebUI
    serves HTTPS with a self-signed certificate for 127.0.0.1 made here by openssl
    (`certificate`, the file portsync is given as ca_file)."""

    def __init__(self, address="127.0.0.1", https=False, interface="lo"):
        """`address`: the loopback address the torrent sockets bind to (one each for several
        clients on one port). `interface`: another one to bind them to instead, in a network
        namespace of the benchmark's (traffic stays inside it)."""
        assert address.startswith("127."), "loopback only"
        self.address = address
        self.interface = interface
        self.profile = tempfile.mkdtemp(prefix="portsync-bench-qbt-")
        self.webui_port = free_port()
        self.password = PASSWORD
        self.certificate = None
        if https:
            self.certificate = os.path.join(self.profile, "webui.crt")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", os.path.join(self.profile, "webui.key"), "-out", self.certificate,
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._start(free_port())

    @property
    def url(self):
        return f"{'https' if self.certificate else 'http'}://127.0.0.1:{self.webui_port}"

    def _connect(self):
        if self.certificate:
            return http.client.HTTPSConnection("127.0.0.1", self.webui_port, timeout=5,
                                               context=ssl.create_default_context(cafile=self.certificate))
        return http.client.HTTPConnection("127.0.0.1", self.webui_port, timeout=5)

    def _write_profile(self, torrent_port):
        """The locked-down profile, written anew before every start (qBittorrent rewrites its
        file on exit; this keeps DHT, UPnP and the rest off whatever happened meanwhile)."""
        config = os.path.join(self.profile, "qBittorrent", "config")
        os.makedirs(config, exist_ok=True)
        with open(os.path.join(ROOT, "Tests", "Fixtures", "qBittorrent.conf")) as template:
            text = (template.read().replace("{TORRENT_PORT}", str(torrent_port))
                    .replace("{WEBUI_PORT}", str(self.webui_port)).replace("{LOCALHOST_AUTH}", "true")
                    .replace("{INTERFACE}", self.interface)
                    .replace("{INTERFACE_ADDRESS}", self.address if self.interface == "lo" else ""))
        if "{" in text or "DHTEnabled=false" not in text:
            raise RuntimeError("Tests/Fixtures/qBittorrent.conf is not the locked-down profile")
        if self.certificate:
            text = text.replace("[Preferences]\n", "[Preferences]\nWebUI\\HTTPS\\Enabled=true\n"
                                f"WebUI\\HTTPS\\CertificatePath={self.certificate}\n"
                                f"WebUI\\HTTPS\\KeyPath={os.path.join(self.profile, 'webui.key')}\n")
        with open(os.path.join(config, "qBittorrent.conf"), "w") as conf:
            conf.write(text)

    def _start(self, torrent_port):
        self._write_profile(torrent_port)
        self.password = PASSWORD  # the profile's hash is of this one
        self.process = subprocess.Popen(
            ["qbittorrent-nox", f"--profile={self.profile}", f"--webui-port={self.webui_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={"HOME": self.profile, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.connection = self._connect()
                self.cookie = self._login()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("qbittorrent-nox did not start")

    def restart(self, kill=False, torrent_port=None):
        """Stops it (SIGKILL when `kill`, else SIGTERM) by its PID and starts it again on the
        same profile, rewritten locked-down first, with the original password."""
        if kill:
            self.process.kill()
            self.process.wait()
        else:
            terminate(self.process, grace=10)
        self._start(torrent_port or free_port())

    def set_preferences(self, values):
        body = urllib.parse.urlencode({"json": json.dumps(values)})
        for attempt in range(2):
            try:
                self.connection.request("POST", "/api/v2/app/setPreferences", body,
                                        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie})
                response = self.connection.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = self._connect()
                if attempt == 1:
                    raise

    def apply_raw(self, port):
        """What portsync does for one change, with as little client work as Python allows: a new
        connection, setPreferences, the read-back, close. Returns the seconds it took: qBittorrent's
        own share of a change."""
        body = urllib.parse.urlencode({"json": json.dumps({"listen_port": port})}).encode()
        host = f"Host: 127.0.0.1:{self.webui_port}\r\nCookie: {self.cookie}\r\n"
        post = (f"POST /api/v2/app/setPreferences HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        get = f"GET /api/v2/app/preferences HTTP/1.1\r\n{host}\r\n".encode()
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.webui_port), timeout=5) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for request in (post, get):
                connection.sendall(request)
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += connection.recv(65536)
                head, rest = answer.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(rest) < length:
                    rest += connection.recv(65536)
            if json.loads(rest)["listen_port"] != port:
                raise RuntimeError(f"qBittorrent did not take port {port}")
        return time.perf_counter() - started

    def add_torrent(self, announce_url, name="portsync-bench"):
        """A single-file torrent with no data anywhere, announcing to `announce_url` (a loopback
        tracker: qBittorrent lets one through only with the path /announce)."""
        info = f"d6:lengthi16384e4:name{len(name)}:{name}12:piece lengthi16384e6:pieces20:{'p' * 20}e"
        torrent = f"d8:announce{len(announce_url)}:{announce_url}4:info{info}e"
        boundary = "portsync-bench-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"bench.torrent\"\r\n"
                f"Content-Type: application/x-bittorrent\r\n\r\n{torrent}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"savepath\"\r\n\r\n{self.profile}/downloads\r\n"
                f"--{boundary}--\r\n")
        connection = self._connect()
        connection.request("POST", "/api/v2/torrents/add", body,
                           {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": self.cookie})
        response = connection.getresponse()
        if response.status != 200 or not response.read().startswith(b"Ok"):
            raise RuntimeError(f"torrents/add answered {response.status}")
        connection.close()

    def failed_logins(self):
        """The failed logins qBittorrent itself logged (every reason), since it was set up."""
        path = os.path.join(self.profile, "qBittorrent", "data", "logs", "qbittorrent.log")
        try:
            with open(path, errors="replace") as log:
                return sum(1 for line in log if "WebAPI login failure" in line)
        except OSError:
            return 0

    def _login(self):
        body = urllib.parse.urlencode({"username": USERNAME, "password": self.password})
        self.connection.request("POST", "/api/v2/auth/login", body,
                                {"Content-Type": "application/x-www-form-urlencoded"})
        response = self.connection.getresponse()
        response.read()
        return response.getheader("Set-Cookie").split(";")[0]

    def listen_port(self):
        for attempt in range(2):
            try:
                self.connection.request("GET", "/api/v2/app/preferences", headers={"Cookie": self.cookie})
                response = self.connection.getresponse()
                return json.loads(response.read())["listen_port"]
            except (http.client.HTTPException, ConnectionError):
                # qBittorrent closes kept-alive connections that sat idle: open a new one.
                self.connection.close()
                self.connection = self._connect()
                if attempt == 1:
                    raise

    def stop(self):
        terminate(self.process, grace=10)
        shutil.rmtree(self.profile, ignore_errors=True)


class Portsync:
    """`portsync run` against a QBittorrent, watching a ProtonVPN file in a temporary runtime dir."""

    def __init__(self, binary, qbittorrent, extra_env=None, home=None, arguments=(), follow=False):
        """`home`: a directory of the caller's to run in (kept at `stop`), else a new one.
        `follow`: read the log through a pipe as it is written, so that `wait_for_line` can tell
        when a line arrived (to a few microseconds) without asking qBittorrent anything."""
        self.own_home = home is None
        self.home = home or tempfile.mkdtemp(prefix="portsync-bench-")
        self.runtime = os.path.join(self.home, "run")
        self.port_file = os.path.join(self.runtime, "Proton", "VPN", "forwarded_port")
        os.makedirs(os.path.dirname(self.port_file), exist_ok=True)
        password_file = os.path.join(self.home, "password")
        if not os.path.exists(password_file):
            with open(password_file, "w") as f:
                f.write(PASSWORD)
        os.chmod(password_file, 0o600)
        self.log_path = os.path.join(self.home, "portsync.log")
        self.state_path = os.path.join(self.home, "state.json")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "XDG_RUNTIME_DIR": self.runtime,
               "PORTSYNC_QBITTORRENT_URL": qbittorrent.url,
               "PORTSYNC_QBITTORRENT_PASSWORD_FILE": password_file,
               "PORTSYNC_DAEMON_STATE_FILE": self.state_path}
        if qbittorrent.certificate:
            env["PORTSYNC_QBITTORRENT_CA_FILE"] = qbittorrent.certificate
        env.update(extra_env or {})
        self.started = time.monotonic()
        self.lines = []
        self.arrived = threading.Condition()
        with open(self.log_path, "a") as log:
            output = subprocess.PIPE if follow else log
            self.process = subprocess.Popen([binary, "run", *arguments], stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, env=env, restore_signals=True)
        if follow:
            threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        """Copies the log to its file and notes when each line arrived."""
        with open(self.log_path, "ab") as log:
            for line in self.process.stdout:
                now = time.perf_counter()
                log.write(line)
                log.flush()
                with self.arrived:
                    self.lines.append((now, line.decode(errors="replace")))
                    self.arrived.notify_all()

    def wait_for_line(self, text, after=0, seconds=20):
        """The perf_counter time at which the first line containing `text`, among the lines from
        index `after` on, arrived; None after `seconds`."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            while True:
                for when, line in self.lines[after:]:
                    if text in line:
                        return when
                left = deadline - time.monotonic()
                if left <= 0 or not self.arrived.wait(left):
                    return None

    def write_port(self, text):
        """Truncate + write + close, as the ProtonVPN app does."""
        with open(self.port_file, "w") as f:
            f.write(text)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for_log(self, text, seconds=20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.002)
        return False

    def stop(self):
        terminate(self.process, grace=5)
        if self.own_home:
            shutil.rmtree(self.home, ignore_errors=True)


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def context_switches(pid):
    """(voluntary, involuntary) context switches of a process so far: each voluntary one is
    the process going to sleep, i.e. one wake-up to come."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if "ctxt_switches" in line:
                key, value = line.split(":")
                values[key.strip()] = int(value)
    return values.get("voluntary_ctxt_switches", 0), values.get("nonvoluntary_ctxt_switches", 0)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_time(line):
    """The wall-clock time of a plain log line ("2026-12-06T14:09:32.123+01:00 ..."), as a Unix time."""
    return datetime.datetime.fromisoformat(line.split()[0]).timestamp()


class RuleWatcher:
    """Timestamps, from a thread blocked in recv, each RTM_NEWRULE that names table 51820 in
    the namespace this process is in: when the route to the gateway appears to the kernel
    (`times` by the wall clock, `perf_times` by perf_counter, as `Portsync.wait_for_line`)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        self.sock.bind((0, 0x80))  # RTMGRP_IPV4_RULE
        self.times = []
        self.perf_times = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        import struct
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            now, perf = time.time(), time.perf_counter()
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                body = data[offset + 16:offset + length]
                # fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action; then attributes.
                if kind == 32 and len(body) >= 12:  # RTM_NEWRULE
                    table = body[4]
                    attr = 12
                    while attr + 4 <= len(body):
                        alen, atype = struct.unpack_from("=HH", body, attr)
                        if alen < 4:
                            break
                        if atype == 15 and alen >= 8:  # FRA_TABLE
                            table = struct.unpack_from("=I", body, attr + 4)[0]
                        attr += (alen + 3) & ~3
                    if table == 51820:
                        self.times.append(now)
                        self.perf_times.append(perf)
                offset += (length + 3) & ~3

    def close(self):
        self.sock.close()


class NetworkLab:
    """A client namespace (wg0 = 10.2.0.2) and a gateway namespace (10.2.0.1) joined by veth,
    made by the benchmark and deleted at the end; this process moves into the client one."""

    def __init__(self):
        if os.geteuid() != 0:
            raise SystemExit("this benchmark needs root: it makes network namespaces")
        tag = f"{os.getpid() % 100000}"
        self.client, self.gateway = f"psync-bc{tag}", f"psync-bg{tag}"
        self.directory = tempfile.mkdtemp(prefix="portsync-bench-lab-")
        self.children = []
        ip = lambda *a: subprocess.run(["ip", *a], check=True)
        ip("netns", "add", self.client)
        ip("netns", "add", self.gateway)
        ip("link", "add", "wg0", "netns", self.client, "type", "veth", "peer", "name", "gw0", "netns", self.gateway)
        for ns, link in [(self.client, "lo"), (self.client, "wg0"), (self.gateway, "lo"), (self.gateway, "gw0")]:
            ip("-n", ns, "link", "set", link, "up")
        ip("-n", self.gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0")
        ip("-n", self.client, "addr", "add", "10.2.0.2", "peer", "10.2.0.1/32", "dev", "wg0")
        self.original = os.open("/proc/self/ns/net", os.O_RDONLY)

    def start_gateway(self):
        self.gateway_log = os.path.join(self.directory, "gateway.log")
        control = os.path.join(self.directory, "control.json")
        with open(control, "w") as f:
            f.write('{"mode": "normal"}')
        script = os.path.join(ROOT, "Tests", "Fixtures", "natpmp_gateway.py")
        process = subprocess.Popen(["ip", "netns", "exec", self.gateway, "python3", script, "--address", "10.2.0.1",
                                    "--control", control, "--log", self.gateway_log],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.children.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(self.gateway_log):
            time.sleep(0.02)

    def gateway_requests(self):
        with open(self.gateway_log) as f:
            return [json.loads(line) for line in f if '"op"' in line]

    def enter_client(self):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.client}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)

    def change_ports(self):
        """Every mapping at the gateway gets a new external port."""
        self.changes = getattr(self, "changes", 0) + 1
        control = os.path.join(self.directory, "control.json")
        with open(control + ".tmp", "w") as f:
            json.dump({"mode": "normal", "change_port": self.changes}, f)
        os.rename(control + ".tmp", control)

    def recreate(self):
        """wg0 deleted and made again, same addresses (a new ifindex), as a VPN reconnect."""
        subprocess.run(["ip", "-n", self.client, "link", "del", "wg0"], check=True)
        subprocess.run(["ip", "link", "add", "wg0", "netns", self.client, "type", "veth", "peer", "name", "gw0",
                        "netns", self.gateway], check=True)
        for ns, link in [(self.client, "wg0"), (self.gateway, "gw0")]:
            subprocess.run(["ip", "-n", ns, "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-n", self.gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0"], check=True)
        subprocess.run(["ip", "-n", self.client, "addr", "add", "10.2.0.2", "peer", "10.2.0.1/32", "dev", "wg0"], check=True)

    def set_tunnel(self, up):
        subprocess.run(["ip", "-n", self.client, "link", "set", "wg0", "up" if up else "down"], check=True)

    def recreate_wg_quick(self, route_delay):
        """wg-quick down, then up, command by command as wireguard-tools' wg-quick does it
        (`Address = 10.2.0.2/32`, `AllowedIPs = 0.0.0.0/0`): the rules, the link; then the link,
        the /32 address, up, `route_delay` s (set_dns), the default route in table 51820 and
        its rules. The first run turns the lab into a wg-quick one. Returns when the old link
        was gone."""
        deleted = self.wg_quick_down()
        self.wg_quick_up(route_delay)
        return deleted

    def wg_quick_down(self):
        """wg-quick down: the rules, then the link (its routes go with it). Returns when it was gone."""
        for rule in (["table", "51820"], ["table", "main", "suppress_prefixlength", "0"]):
            subprocess.run(["ip", "-n", self.client, "-4", "rule", "delete", *rule], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "-n", self.client, "link", "del", "wg0"], check=True, stderr=subprocess.DEVNULL)
        return time.time()

    def wg_quick_up(self, route_delay):
        """wg-quick up: the link, its /32 address, up, `route_delay` s, the route and its rules."""
        ip = lambda *a: subprocess.run(["ip", "-n", self.client, *a], check=True, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "add", "wg0", "netns", self.client, "type", "veth", "peer", "name", "gw0",
                        "netns", self.gateway], check=True)
        subprocess.run(["ip", "-n", self.gateway, "link", "set", "gw0", "up"], check=True)
        subprocess.run(["ip", "-n", self.gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0"], check=True)
        ip("-4", "address", "add", "10.2.0.2/32", "dev", "wg0")
        ip("link", "set", "mtu", "1420", "up", "dev", "wg0")
        time.sleep(route_delay)
        ip("-4", "route", "add", "0.0.0.0/0", "dev", "wg0", "table", "51820")
        ip("-4", "rule", "add", "not", "fwmark", "51820", "table", "51820")
        ip("-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")

    def close(self):
        import ctypes
        ctypes.CDLL(None).setns(self.original, 0x40000000)
        for child in self.children:
            child.terminate()
            child.wait()
        subprocess.run(["ip", "netns", "del", self.client])
        subprocess.run(["ip", "netns", "del", self.gateway])
        shutil.rmtree(self.directory, ignore_errors=True)
