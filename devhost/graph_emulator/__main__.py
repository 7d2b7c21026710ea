"""``python -m devhost.graph_emulator --port 7072``: the Graph emulator on loopback."""

from __future__ import annotations

import argparse

from aiohttp import web

from devhost.graph_emulator.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost.graph_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only by default: it accepts any token")
    parser.add_argument("--port", type=int, default=7072)
    args = parser.parse_args(argv)
    print(f"Graph emulator: GRAPH_BASE_URL=http://{args.host}:{args.port}/v1.0", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
