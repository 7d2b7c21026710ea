"""``python -m devhost``: serve the app's functions and run its orchestrations locally."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path

from . import azurite
from .clock import Clock, ClockMode
from .durable.registry import UnsupportedFunction
from .host import Host
from .schedules import ScheduleError
from .worker import Worker, WorkerRefused, runtime_version
from .worker_processes import SETTING, WorkerProcesses, process_count

log = logging.getLogger("devhost")
AZURITE_PORT = 10002
AZURITE_BLOB_PORT = 10000  # the development storage defaults


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    p.add_argument("--port", type=int, default=int(os.environ.get("DEVHOST_PORT", "7071")))
    p.add_argument("--clock", choices=[m.value for m in ClockMode], default="real")
    p.add_argument("--data-dir", type=Path, default=Path(".data"))
    p.add_argument(
        "--storage",
        default=os.environ.get("AzureWebJobsStorage", ""),  # noqa: SIM112 - the Functions setting's name
        help="Table storage connection string (default: env AzureWebJobsStorage, else Azurite)",
    )
    p.add_argument(
        "--app",
        default="function_app:app",
        help="the app's script, as a path to a .py file or module[:attribute] (default function_app); "
        "the worker indexes that file",
    )
    p.add_argument(
        "--bind",
        default=os.environ.get("DEVHOST_BIND", "127.0.0.1"),
        help="address to listen on (default loopback only; 0.0.0.0 exposes the host to the network)",
    )
    p.add_argument("--task-hub", default=os.environ.get("DEVHOST_TASK_HUB"))
    p.add_argument("--log-level", default=os.environ.get("DEVHOST_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--demo",
        action="store_true",
        help="make run: dev mode, Graph emulator, seeded experts, demo portal and a demo booking",
    )
    return p.parse_args(argv)


def app_location(spec: str) -> tuple[Path, str]:
    """The folder and script file of ``module[:attribute]``, found without importing it: the
    worker imports the script itself, by its file name, as the Functions host has it do."""
    if spec.endswith(".py"):
        script = Path(spec).resolve()
        if not script.is_file():
            raise SystemExit(f"devhost: no app script {script}")
        return script.parent, script.name
    module_name = spec.partition(":")[0]
    found = importlib.util.find_spec(module_name)
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise SystemExit(f"devhost: no Python file for the app module {module_name!r}")
    script = Path(found.origin)
    return script.parent, script.name


def _dev_mode() -> bool:
    return os.environ.get("DEV_MODE", "").strip().lower() in ("1", "true", "yes")


def hand_clock_to_app(clock: Clock) -> None:
    """The app's bootstrap takes the devhost clock, so domain time rules follow it."""
    try:
        bootstrap = importlib.import_module("bootstrap")
    except ImportError:
        return
    use_clock = getattr(bootstrap, "use_clock", None)
    if callable(use_clock):
        use_clock(clock)


async def serve(args: argparse.Namespace) -> None:
    started: azurite.Azurite | None = None
    storage = args.storage
    if not storage or storage.strip().lower().startswith("usedevelopmentstorage=true"):
        if not azurite.is_listening(AZURITE_PORT):
            started = azurite.start(AZURITE_PORT, args.data_dir / "azurite", blob_port=AZURITE_BLOB_PORT)
            log.info(
                "started Azurite on 127.0.0.1:%s (tables), :%s (blobs); data in %s",
                AZURITE_PORT,
                AZURITE_BLOB_PORT,
                args.data_dir / "azurite",
            )
        storage = azurite.connection_string(AZURITE_PORT, blob_port=AZURITE_BLOB_PORT)
    # The app reads its storage from the environment, like on Azure.
    os.environ["AzureWebJobsStorage"] = storage  # noqa: SIM112 - the Functions setting's name
    demo = None
    if args.demo:
        from . import demo as demo_module

        demo = demo_module.configure(args.port)
    clock = Clock(ClockMode(args.clock))
    hand_clock_to_app(clock)
    if demo is not None and demo.emulator is not None:
        demo.emulator.state.event_clock = clock.now  # call events happen on the demo's clock
    sys.path.insert(0, str(Path.cwd()))
    app_dir, script = app_location(args.app)
    worker = Worker(app_dir, script)
    try:
        count = process_count()
    except ValueError as exc:
        print(f"devhost: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if count > 1:
        worker.processes = WorkerProcesses(app_dir, script, count, clock)
    host = Host(
        worker,
        storage=storage,
        port=args.port,
        clock=clock,
        hub=args.task_hub,
        bind=args.bind,
        dev_mode=_dev_mode(),
    )
    try:
        await host.load()
    except WorkerRefused as exc:
        # The worker's own words, as the Functions host would log them; nothing is served.
        print(f"devhost: the Python worker refused the app: {exc}", file=sys.stderr, flush=True)
        if started is not None:
            started.stop()
        if demo is not None:
            demo.stop()
        raise SystemExit(3) from None
    portal = False
    if demo is not None:
        demo_module.seed_experts()
    if demo is not None or os.environ.get("DEVHOST_PORTAL") == "1":
        from . import demo as demo_module

        portal = demo_module.mount(host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await host.start()
        except (UnsupportedFunction, ScheduleError) as exc:
            # Refused at load, as the host refuses a function it cannot index; nothing runs.
            print(f"devhost: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None
        gc.freeze()  # the host's own long-lived objects, out of the cyclic collector's way
        print(
            f"devhost: serving {app_dir / script} through the Python worker "
            f"(azure-functions-runtime {runtime_version()}) on {host.base_url}/api/ "
            f"(clock: {clock.mode.value}, task hub: {host.hub})",
            flush=True,
        )
        where = "loopback only" if args.bind in ("127.0.0.1", "::1", "localhost") else "ALL interfaces"
        print(f"  Listening on {args.bind}:{args.port} ({where})", flush=True)
        if worker.processes is not None:
            pids = ", ".join(str(pid) for pid in worker.processes.pids)
            print(f"  Workers      {count} worker processes ({SETTING}; pids {pids})", flush=True)
        for f in host.functions:
            methods = ",".join(sorted(f.methods)) if f.methods else "*"
            print(f"  {methods:<12} {host.base_url}/api/{f.route}  [{f.auth_level}]", flush=True)
        triggers = host.engine.triggers
        for name, timer in sorted((triggers.timers if triggers else {}).items()):
            print(
                f"  Timer        {name}  [{timer.schedule.expression}]  next {timer.status.next.isoformat()}",
                flush=True,
            )
        print(
            f"  Durable API  {host.base_url}/runtime/webhooks/durabletask/instances  (system key: ?code=)",
            flush=True,
        )
        if clock.adjustable and host.dev_mode:
            print(
                f'  Clock        {host.base_url}/dev/clock  (POST /dev/clock/advance {{"hours": 1}})',
                flush=True,
            )
        if host.function_key_generated:
            print(f"  Function key (x-functions-key / ?code=): {host.function_key}", flush=True)
        if demo is not None:
            code = await asyncio.to_thread(demo_module.book_demo_appointment, host.base_url)
            if portal:
                print(
                    f"\n  Demo portal  {host.base_url}/portal/   (customer: demo-customer; experts in the bar)",  # noqa: E501
                    flush=True,
                )
            if demo.emulator is not None:
                print(
                    f"  Graph        {demo.emulator.base_url}  (emulator; mail at "
                    f"{demo.emulator.origin}/_emulator/mail)",
                    flush=True,
                )
            if code:
                print(f"  Demo booking {code} for demo-customer", flush=True)
        print("devhost: ready", flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await host.stop()
        if demo is not None:
            demo.stop()
        if started is not None:
            started.stop()


def configure_logging(level: str) -> None:
    """Plain text; with ``LOG_FORMAT=json`` one JSON object per line, carrying the booking code,
    instance id and operation the app binds (what Application Insights gets as dimensions)."""
    if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
        from adapters.telemetry import JsonFormatter, install_record_factory

        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler])
        install_record_factory()
    else:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
