"""Orthanc with its DICOMweb plugin, for the tests, inside a network namespace of its own.

Orthanc 1.10 listens on every interface and has no setting to bind one address, so it runs in a
network namespace the tests create. A veth pair joins the namespace to this machine, its two
ends holding the two addresses of a private /30 network. The namespace has no other interface
than loopback and no default route, and nothing enables forwarding. So only this machine
reaches Orthanc, at the namespace end of the pair, and Orthanc reaches only the host end, where
a test binds the server that Orthanc queries.

Creating namespaces needs root (CAP_NET_ADMIN). Names start with ``h8fed`` and end with the
test process id. A namespace left by a test process that no longer runs is removed at the next
start, with the Orthanc processes inside it.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
NAMESPACE_PREFIX = "h8fed"
ORTHANC_PORT = 8042
PRIVATE_RANGE = ipaddress.ip_network("10.208.0.0/16")
TIMEOUT = 60.0


def _ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *arguments], capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Namespace:
    """A network namespace joined to this machine by a veth pair on a private /30 network."""

    name: str
    host_interface: str
    host_address: str
    namespace_address: str

    def run(self, arguments: list[str], **options: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *arguments], **options)

    def remove(self) -> None:
        """Stop every process left in the namespace, then delete it with its end of the pair."""
        listed = _ip("netns", "pids", self.name, check=False)
        for pid in listed.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _ip("netns", "delete", self.name, check=False)
        _ip("link", "delete", self.host_interface, check=False)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> None:
    """Delete the namespaces of test processes that no longer run (ours only, by name)."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        suffix = name.removeprefix(NAMESPACE_PREFIX)
        if name.startswith(NAMESPACE_PREFIX) and suffix.isdigit() and not _process_alive(int(suffix)):
            Namespace(name, f"{NAMESPACE_PREFIX}{suffix}h", "", "").remove()


def _free_network() -> ipaddress.IPv4Network:
    """Pick a /30 of 10.208.0.0/16 that no interface of this machine uses."""
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    candidates = list(PRIVATE_RANGE.subnets(new_prefix=30))
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free /30 network in 10.208.0.0/16 for the test namespace")


def create_namespace() -> Namespace:
    """Create the namespace of this test process with its veth pair, addresses and links up."""
    remove_stale_namespaces()
    pid = os.getpid()
    name = f"{NAMESPACE_PREFIX}{pid}"
    host_interface, namespace_interface = f"{NAMESPACE_PREFIX}{pid}h", f"{NAMESPACE_PREFIX}{pid}n"
    host_address, namespace_address = (str(address) for address in _free_network().hosts())
    namespace = Namespace(name, host_interface, host_address, namespace_address)
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_interface, "type", "veth", "peer", "name", namespace_interface)
        _ip("link", "set", namespace_interface, "netns", name)
        _ip("addr", "add", f"{host_address}/30", "dev", host_interface)
        _ip("link", "set", host_interface, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{namespace_address}/30", "dev", namespace_interface)
        _ip("netns", "exec", name, "ip", "link", "set", namespace_interface, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except BaseException:
        namespace.remove()
        raise
    return namespace


@dataclass
class Orthanc:
    """An Orthanc process in a namespace; ``url`` is its REST root, ``dicomweb`` its DICOMweb root."""

    namespace: Namespace
    folder: Path
    process: subprocess.Popen[bytes]
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT, trust_env=False)

    @property
    def url(self) -> str:
        return f"http://{self.namespace.namespace_address}:{ORTHANC_PORT}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def log(self) -> str:
        return (self.folder / "orthanc.log").read_text(errors="replace")

    def store(self, content: bytes) -> dict[str, Any]:
        """Store one Part 10 file through Orthanc's REST API."""
        response = self.http.post("/instances", content=content)
        response.raise_for_status()
        stored: dict[str, Any] = response.json()
        return stored

    def add_dicomweb_server(self, name: str, url: str, headers: dict[str, str]) -> None:
        """Register a DICOMweb server in Orthanc with fixed HTTP headers (its HttpHeaders setting)."""
        response = self.http.put(f"/dicom-web/servers/{name}", json={"Url": url, "HttpHeaders": headers})
        response.raise_for_status()

    def study_uids(self) -> set[str]:
        """Return the StudyInstanceUIDs Orthanc holds."""
        response = self.http.post("/tools/find", json={"Level": "Study", "Query": {}, "Expand": True})
        response.raise_for_status()
        return {item["MainDicomTags"]["StudyInstanceUID"] for item in response.json()}

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _configuration(folder: Path) -> dict[str, Any]:
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    return {
        "Name": "h8-federation-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": ORTHANC_PORT,
        # Only this machine reaches the namespace, through the veth pair.
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "SaveJobs": False,
        "StableAge": 1,
        "HttpTimeout": 30,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Servers": {}},
    }


def start_orthanc(namespace: Namespace, folder: Path) -> Orthanc:
    """Start Orthanc with its DICOMweb plugin inside ``namespace`` and wait until its REST API responds."""
    folder.mkdir(parents=True, exist_ok=True)
    configuration = folder / "orthanc.json"
    configuration.write_text(json.dumps(_configuration(folder), indent=2), encoding="utf-8")
    with (folder / "orthanc.log").open("wb") as log:
        process = namespace.run([ORTHANC, str(configuration)], stdout=log, stderr=subprocess.STDOUT)
    orthanc = Orthanc(namespace, folder, process)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{orthanc.log()}")
        try:
            if orthanc.http.get("/system", timeout=2).status_code == 200:
                return orthanc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    orthanc.stop()
    raise RuntimeError(f"Orthanc did not respond at {orthanc.url} within {TIMEOUT} s:\n{orthanc.log()}")


@contextmanager
def namespace_for_tests() -> Iterator[Namespace]:
    """Yield a new namespace and remove it at the end, also when the test process exits early."""
    namespace = create_namespace()
    atexit.register(namespace.remove)
    try:
        yield namespace
    finally:
        namespace.remove()
        atexit.unregister(namespace.remove)


@contextmanager
def running_orthanc(namespace: Namespace, folder: Path) -> Iterator[Orthanc]:
    """Yield an Orthanc started in ``namespace``, stopped at the end whatever happened."""
    orthanc = start_orthanc(namespace, folder)
    atexit.register(orthanc.stop)
    try:
        yield orthanc
    finally:
        orthanc.stop()
        atexit.unregister(orthanc.stop)
