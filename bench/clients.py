"""transmission-daemon and deluged + deluge-web for the benchmarks, locked down exactly as
Tests/TestSupport/TransmissionInstance.swift and DelugeInstance.swift do it (docs/test-daemons.md):
the configuration from Tests/Fixtures written before the first start, refused unless locked down;
peers bound to a loopback address; `ss` must show nothing outside loopback; stopped by PID.
deluged runs only inside a LoopbackNamespace (nothing but `lo`), made and deleted here."""
import base64
import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import qbtlab

FIXTURES = os.path.join(qbtlab.ROOT, "Tests", "Fixtures")
TRANSMISSION_USER = "portsync"
TRANSMISSION_PASSWORD = "portsync-test-password"
DELUGE_WEB_PASSWORD = "portsync-web-password"
DELUGE_HOST_ID = "5e1f0c2d3b4a59687766554433221100"
CLONE_NEWNET = 0x40000000


def available():
    """Why the four-client scenario cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (deluged runs only in a network namespace of its own)"
    missing = [name for name in ("qbittorrent-nox", "transmission-daemon", "deluged", "deluge-web", "ip", "ss")
               if shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin") is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def is_loopback(address, local):
    """As SocketTable.isLoopback: 127.0.0.0/8 or ::1 (a %lo suffix allowed); a peer may be `*`."""
    host, _, port = address.rpartition(":")
    host = host.split("%")[0]
    if not local and port == "*" and host in ("0.0.0.0", "*", "[::]", "[::ffff:0.0.0.0]"):
        return True
    return host.startswith("127.") or host == "[::1]" or host.startswith("[::ffff:127.")


def sockets(pids):
    """`ss -H -tuanp` lines of `pids`, in this thread's network namespace."""
    output = subprocess.run(["ss", "-H", "-tuanp"], check=True, capture_output=True, text=True).stdout
    return [line for line in output.splitlines() if any(f"pid={pid}," in line for pid in pids)]


def require_loopback_only(pids, what):
    """Raises, quoting them, when a socket of `pids` is outside loopback; returns the lines."""
    lines = sockets(pids)
    outside = [line for line in lines if len(line.split()) < 6
               or not is_loopback(line.split()[4], True) or not is_loopback(line.split()[5], False)]
    if outside:
        raise RuntimeError(f"{what} holds sockets outside loopback:\n" + "\n".join(outside))
    return lines


class LoopbackNamespace:
    """A network namespace with nothing but `lo` (up); `enter` moves this thread (and the
    processes it starts from then on) into it, `close` moves back and deletes it."""

    def __init__(self):
        self.name = f"psync-blo{os.getpid() % 100000}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.original = None
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            links = subprocess.run(["ip", "-n", self.name, "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
            names = [line.split(":")[1].strip() for line in links.splitlines()]
            if names != ["lo"]:
                raise RuntimeError(f"namespace {self.name} holds {names}, not only lo")
        except Exception:
            self.close()
            raise

    def enter(self):
        self.original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
        finally:
            os.close(target)

    def close(self):
        if self.original is not None:
            if ctypes.CDLL(None).setns(self.original, CLONE_NEWNET) != 0:
                raise OSError("cannot return to the original network namespace")
            os.close(self.original)
            self.original = None
        subprocess.run(["ip", "netns", "del", self.name])


def wait_for_listeners(process, listeners, what, seconds=30):
    """Until `process` listens on each of `listeners` ("127.0.0.1:8112 "); then the `ss` check."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        lines = sockets([process.pid])
        if all(any("LISTEN" in line and listener in line for line in lines) for listener in listeners):
            time.sleep(0.3)  # libtorrent may hold its default sockets a moment after the config applies
            return require_loopback_only([process.pid], what)
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def spawn(argv, directory, output):
    with open(os.path.join(directory, output), "w") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={"HOME": directory, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


class Transmission:
    """transmission-daemon on Tests/Fixtures/transmission-settings.json, peers on `address`."""

    def __init__(self, address="127.0.0.1"):
        assert address.startswith("127."), "loopback only"
        self.directory = tempfile.mkdtemp(prefix="portsync-transmission-bench-")
        self.rpc_port, self.peer_port = qbtlab.free_port(), qbtlab.free_port()
        self.process = None
        with open(os.path.join(FIXTURES, "transmission-settings.json")) as template:
            text = (template.read().replace("{DIRECTORY}", self.directory).replace("{PEER_PORT}", str(self.peer_port))
                    .replace("{RPC_PORT}", str(self.rpc_port)).replace("{USERNAME}", TRANSMISSION_USER)
                    .replace("{PASSWORD}", TRANSMISSION_PASSWORD)
                    .replace('"bind-address-ipv4": "127.0.0.1"', f'"bind-address-ipv4": "{address}"'))
        settings = json.loads(text) if not re.search(r"\{[A-Z_]+\}", text) else {}
        locked = all(settings.get(key) is False for key in ("dht-enabled", "pex-enabled", "lpd-enabled", "utp-enabled",
                                                              "port-forwarding-enabled"))
        if not locked or not settings["bind-address-ipv4"].startswith("127.") or settings["rpc-bind-address"] != "127.0.0.1":
            self.stop()
            raise RuntimeError("Tests/Fixtures/transmission-settings.json is not the locked-down settings")
        with open(os.path.join(self.directory, "settings.json"), "w") as f:
            f.write(text)
        self.process = spawn(["transmission-daemon", "--foreground", "--config-dir", self.directory,
                              "--logfile", os.path.join(self.directory, "transmission.log")], self.directory, "output.log")
        try:
            self._wait()
        except Exception:
            self.stop()
            raise

    def _wait(self):
        """The 409 of the CSRF handshake, with the right credentials (a wrong one counts toward
        Transmission's lock-out), then the RPC and peer listeners, then the `ss` check."""
        credentials = base64.b64encode(f"{TRANSMISSION_USER}:{TRANSMISSION_PASSWORD}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.rpc_port}/transmission/rpc", data=b"{}",
                                         headers={"Authorization": f"Basic {credentials}"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as error:
                if error.code == 409 and len(require_loopback_only([self.process.pid], "transmission-daemon")) >= 3:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("transmission-daemon did not start")

    def stop(self):
        if self.process:
            qbtlab.terminate(self.process, grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)


class Deluge:
    """deluged + deluge-web, started with `ip netns exec` in `namespace` (it execs: the PID is
    the program's own), on the throwaway configuration DelugeInstance writes."""
    web_port, daemon_port = 8112, 58846

    def __init__(self, namespace, listen_port=6900):
        self.namespace = namespace
        self.directory = tempfile.mkdtemp(prefix="portsync-deluge-bench-")
        self.processes = []
        try:
            self._write_configuration(listen_port)
            self.daemon = self._start("deluged", ["--ui-interface", "127.0.0.1", "--interface", "127.0.0.1"],
                                      [f"127.0.0.1:{self.daemon_port} ", f":{listen_port} "])
            self.web = self._start("deluge-web", ["--interface", "127.0.0.1", "--port", str(self.web_port)],
                                   [f"127.0.0.1:{self.web_port} "])
        except Exception:
            self.stop()
            raise

    def _write_configuration(self, listen_port):
        with open(os.path.join(FIXTURES, "deluge-core.conf")) as template:
            core = (template.read().replace("{DIRECTORY}", self.directory).replace("{DAEMON_PORT}", str(self.daemon_port))
                    .replace("{LISTEN_PORT}", str(listen_port)))
        locked = ['"dht": false', '"upnp": false', '"natpmp": false', '"utpex": false', '"lsd": false',
                  '"listen_interface": "127.0.0.1"', '"outgoing_interface": "lo"']
        if re.search(r"\{[A-Z_]+\}", core) or not all(setting in core for setting in locked):
            raise RuntimeError("Tests/Fixtures/deluge-core.conf is not the locked-down core.conf")
        os.makedirs(os.path.join(self.directory, "downloads"))
        daemon_password = base64.b16encode(os.urandom(12)).decode().lower()
        files = {
            "core.conf": core,
            "auth": f"localclient:{base64.b16encode(os.urandom(12)).decode().lower()}:10\nportsync:{daemon_password}:10\n",
            "hostlist.conf": json.dumps({"file": 3, "format": 1}) + json.dumps(
                {"hosts": [[DELUGE_HOST_ID, "127.0.0.1", self.daemon_port, "portsync", daemon_password]]}),
            "web.conf": json.dumps({"file": 2, "format": 1}) + json.dumps({
                "pwd_salt": "8a3a5d8f6b1e4c2a9d7f0e1b2c3d4e5f6a7b8c9d",
                "pwd_sha1": hashlib.sha1(("8a3a5d8f6b1e4c2a9d7f0e1b2c3d4e5f6a7b8c9d" + DELUGE_WEB_PASSWORD).encode()).hexdigest(),
                "default_daemon": "", "interface": "127.0.0.1", "port": self.web_port, "https": False, "first_login": False,
                "enabled_plugins": [], "base": "/", "session_timeout": 3600, "sessions": {}}),
        }
        for name, text in files.items():
            path = os.path.join(self.directory, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(text)

    def _start(self, program, arguments, listeners):
        process = spawn(["ip", "netns", "exec", self.namespace.name, f"/usr/bin/{program}", "--do-not-daemonize",
                         "--config", self.directory, *arguments, "--loglevel", "info",
                         "--logfile", os.path.join(self.directory, f"{program}.log")], self.directory, f"{program}.out")
        self.processes.append(process)
        wait_for_listeners(process, listeners, program)
        return process

    def stop(self):
        for process in reversed(self.processes):
            qbtlab.terminate(process, grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)
