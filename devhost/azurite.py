"""Start and stop Azurite's table and blob services from the project's own ``node_modules``.

The blob service holds what the durable engine offloads from table rows (large messages), as
the Azure Storage provider does.

Used by ``python -m devhost`` (persistent data under ``.data/azurite``) and by the
test suite (in memory, on a free loopback port).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_BLOB = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"

# The well-known development account every Azurite ships with; not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int, host: str = "127.0.0.1", blob_port: int | None = None) -> str:
    """The explicit connection string for Azurite's table endpoint on ``host:port`` (and its blob
    endpoint on ``blob_port``)."""
    blob = f"BlobEndpoint=http://{host}:{blob_port}/{DEV_ACCOUNT};" if blob_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"TableEndpoint=http://{host}:{port}/{DEV_ACCOUNT};{blob}"
    )


def free_port() -> int:
    """A free TCP port on loopback (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def wait_until_listening(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Wait with a bounded retry until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen[bytes] | None
    blob_port: int | None = None
    blob_process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, blob_port=self.blob_port)

    def stop(self) -> None:
        for process in (self.process, self.blob_process):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _launch(binary: Path, service: str, port: int, location: Path | None) -> subprocess.Popen[bytes]:
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `npm ci` (make does it)")
    args = [
        str(binary),
        f"--{service}Host",
        "127.0.0.1",
        f"--{service}Port",
        str(port),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--silent",
    ]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    if shutil.which("node") is None:
        raise FileNotFoundError("node is not on PATH")
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT
    )
    try:
        wait_until_listening(port)
    except TimeoutError:
        process.kill()
        raise
    return process


def start(port: int | None = None, location: Path | None = None, blob_port: int | None = None) -> Azurite:
    """Start ``azurite-table`` and ``azurite-blob`` on loopback: in memory, or under ``location``."""
    port = port or free_port()
    blob_port = blob_port or free_port()
    table = _launch(AZURITE_TABLE, "table", port, location)
    try:
        blob = _launch(AZURITE_BLOB, "blob", blob_port, location)
    except (OSError, TimeoutError):
        table.kill()
        raise
    return Azurite(port=port, process=table, blob_port=blob_port, blob_process=blob)


@contextlib.contextmanager
def running(port: int | None = None, location: Path | None = None) -> Iterator[Azurite]:
    azurite = start(port, location)
    try:
        yield azurite
    finally:
        azurite.stop()
