"""Local processes of the embedded deployer: free loopback ports, liveness, process groups, log tails."""

import os
import random
import signal
import socket
import time
from pathlib import Path

LOWEST_PORT = 20000


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes the local ports of outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing listens on, chosen below the ephemeral range: the port is bound later (by a server
    started after this returns), and in the ephemeral range an outgoing connection could take it meanwhile."""
    low, _ = ephemeral_ports()
    candidates = random.sample(range(LOWEST_PORT, low), k=min(200, low - LOWEST_PORT)) if low > LOWEST_PORT else []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the ephemeral range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The child processes of `pid` (BentoML's worker runs in a process group of its own)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def terminate(pid: int, timeout: float = 20) -> None:
    """SIGTERM the process group (BentoML stops its workers), then SIGKILL whatever of it is left."""
    family = [pid, *children(pid)]
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)
    for p in family:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
