"""``codec encode`` (audio → .npz tokens) and ``codec decode`` (.npz tokens → audio)."""

from __future__ import annotations

import argparse

from funcodec_lite.audio.blocks import AUDIO_EXTENSIONS, WRITE_FORMATS
from funcodec_lite.cli.common import (
    Job,
    UsageError,
    add_chunk_args,
    add_model_args,
    check_n_q,
    chunk_config,
    collect_jobs,
    load_from_args,
    run_jobs,
)
from funcodec_lite.inference.filecoding import decode_file, encode_file


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode audio files to .npz token files (a file, a directory tree, or a wav.scp)."""
    if args.n_q is not None and args.bandwidth is not None:
        raise UsageError("give --bandwidth or --n-q, not both")
    jobs, single = collect_jobs(args.input, args.output, args.scp, args.out_dir, AUDIO_EXTENSIONS, ".npz",
                                "encode")
    for job in jobs:
        if job.dest.suffix != ".npz":
            raise UsageError(f"{job.dest}: token files end in .npz")
    codec = load_from_args(args)
    n_q = codec.n_q_for_bandwidth(args.bandwidth) if args.bandwidth is not None else args.n_q
    check_n_q(n_q, codec)
    chunk = chunk_config(args)

    def work(job: Job) -> str:
        tokens = encode_file(codec, job.src, job.dest, n_q=n_q, chunk=chunk)
        return (f"{job.src} -> {job.dest}: {tokens.duration:.2f} s, {tokens.streams} x {tokens.n_q} x "
                f"{tokens.frames} codes, {tokens.kbps:.2f} kbps per channel")

    return run_jobs(jobs, single, work, "encode", args.quiet)


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode .npz token files to audio with the original rate, length and channels."""
    suffix = "." + args.format
    jobs, single = collect_jobs(args.input, args.output, args.scp, args.out_dir, (".npz",), suffix, "decode")
    for job in jobs:
        if job.dest.suffix.lower() not in WRITE_FORMATS:
            raise UsageError(f"{job.dest}: the output must end in one of {', '.join(sorted(WRITE_FORMATS))}")
    codec = load_from_args(args)
    chunk = chunk_config(args)

    def work(job: Job) -> str:
        tokens = decode_file(codec, job.src, job.dest, force=args.force, chunk=chunk, subtype=args.subtype)
        return (f"{job.src} -> {job.dest}: {tokens.duration:.2f} s, {tokens.num_channels} channel(s), "
                f"{tokens.sample_rate} Hz")

    return run_jobs(jobs, single, work, "decode", args.quiet)


def register(commands: argparse._SubParsersAction) -> None:
    """Adds the encode and decode commands."""
    encode = commands.add_parser("encode", help=cmd_encode.__doc__, description=cmd_encode.__doc__)
    encode.add_argument("input", nargs="?", help="audio file or directory")
    encode.add_argument("output", nargs="?", help=".npz file, or directory for a directory input")
    encode.add_argument("--scp", help="wav.scp (utt-id path per line) instead of IN")
    encode.add_argument("--out-dir", help="output directory for --scp (writes <utt-id>.npz)")
    rate = encode.add_mutually_exclusive_group()
    rate.add_argument("--bandwidth", type=float, metavar="KBPS", help="bit rate in kbps (chooses n_q)")
    rate.add_argument("--n-q", type=int, help="number of codebooks (default: all)")
    add_model_args(encode)
    add_chunk_args(encode)
    encode.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    encode.set_defaults(func=cmd_encode)

    decode = commands.add_parser("decode", help=cmd_decode.__doc__, description=cmd_decode.__doc__)
    decode.add_argument("input", nargs="?", help=".npz file or directory")
    decode.add_argument("output", nargs="?", help="audio file (.wav, .flac, .ogg), or directory")
    decode.add_argument("--scp", help="scp of token files (utt-id path.npz per line) instead of IN")
    decode.add_argument("--out-dir", help="output directory for --scp")
    decode.add_argument("--format", default="wav", choices=[ext[1:] for ext in sorted(WRITE_FORMATS)],
                        help="output format for directory and --scp inputs (default wav)")
    decode.add_argument("--subtype", help="soundfile subtype, e.g. PCM_24 or FLOAT (default PCM_16)")
    decode.add_argument("--force", action="store_true", help="decode tokens made by a different model")
    add_model_args(decode)
    add_chunk_args(decode)
    decode.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    decode.set_defaults(func=cmd_decode)
