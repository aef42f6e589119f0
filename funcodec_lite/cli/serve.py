"""``codec serve``: a local demo page: upload or record audio, pick a model and bit rate, hear and see the
result.

The server is the standard library's ``http.server`` (one static page, JSON endpoints): see
`funcodec_lite.jobs.demo_server` and docs/cli.md for why not gradio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from funcodec_lite.cli.common import UsageError


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the demo page on http://HOST:PORT/ until interrupted (Ctrl-C); every file it writes goes under
    --out (default: a new temporary folder)."""
    import torch

    from funcodec_lite.jobs.demo import DemoApp, DemoConfig
    from funcodec_lite.jobs.demo_server import make_server

    if args.max_seconds <= 0:
        raise UsageError(f"--max-seconds must be > 0, got {args.max_seconds}")
    if args.c2f and len(args.c2f) > len(args.masked or []):
        raise UsageError("--c2f DIR pairs with a --masked DIR (one --c2f per --masked, in order)")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="codec-serve-"))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    models = ([None] if not args.no_default else []) + list(args.model or [])
    if not models:
        raise UsageError("--no-default needs at least one --model DIR")
    app = DemoApp(models, args.masked or [], args.c2f or [], out, DemoConfig(max_seconds=args.max_seconds))
    out.mkdir(parents=True, exist_ok=True)
    server = make_server(app, args.host, args.port, quiet=not args.verbose)
    host, port = server.server_address[:2]
    print(f"codec serve: http://{host}:{port}/ ({len(app.models)} model(s), {len(app.masked)} masked; files "
          f"under {out}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("codec serve: stopped", flush=True)
    finally:
        server.server_close()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="A local demo page: upload audio, hear it coded.",
                                description=cmd_serve.__doc__)
    serve.add_argument("--model", action="append", metavar="DIR",
                       help="another codec model directory to offer (repeat); the default model comes "
                            "first")
    serve.add_argument("--no-default", action="store_true", help="do not offer the default model")
    serve.add_argument("--masked", action="append", metavar="DIR",
                       help="a coarse masked token model (codec vamp --model) to vamp with (repeat)")
    serve.add_argument("--c2f", action="append", metavar="DIR",
                       help="the coarse-to-fine model of the --masked model at the same position")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this "
                       "machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0: a free one)")
    serve.add_argument("--out", metavar="DIR", help="where uploads and results go (default: a new temporary "
                       "folder)")
    serve.add_argument("--max-seconds", type=float, default=30.0, help="longest clip accepted (default "
                       "%(default)s)")
    serve.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)
