# TEST STAND-IN for NVIDIA's nvidia-ctk, packaged by the difyops molecule scenario
# container_runtime because the real toolkit cannot be downloaded in the test environment and no GPU
# is present. It is not NVIDIA software. It does what the role relies on, the way the real tool does:
#   nvidia-ctk runtime configure --runtime=docker [--config=FILE] [--set-as-default]
#       reads daemon.json, adds runtimes.nvidia, keeps every other key, writes the file back;
#   nvidia-ctk cdi generate --output=FILE
#       writes a CDI specification (for one stand-in device);
#   nvidia-ctk --version
"""Test stand-in for nvidia-ctk (see the comment above)."""
import argparse
import json
import os
import sys

VERSION = "@VERSION@"


def runtime_configure(args):
    if args.runtime != "docker":
        sys.exit("stand-in nvidia-ctk: only --runtime=docker is implemented")
    config = {}
    if os.path.exists(args.config):
        with open(args.config, encoding="utf-8") as handle:
            text = handle.read()
        if text.strip():
            try:
                config = json.loads(text)
            except ValueError as exc:
                sys.exit("ERRO[0000] unable to load config: could not parse %s: %s" % (args.config, exc))
    config.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
    if args.set_as_default:
        config["default-runtime"] = "nvidia"
    os.makedirs(os.path.dirname(args.config) or ".", exist_ok=True)
    with open(args.config, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=4)
        handle.write("\n")
    print("INFO[0000] Wrote updated config to %s" % args.config)
    print("INFO[0000] It is recommended that docker daemon be restarted.")


def cdi_generate(args):
    spec = ("---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\n"
            "devices:\n  - name: \"0\"\n    containerEdits: {}\n  - name: all\n    containerEdits: {}\n"
            "containerEdits: {}\n")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(spec)
    print("INFO[0000] Generated CDI spec with version 0.5.0 (test stand-in) in %s" % args.output)


def main():
    parser = argparse.ArgumentParser(prog="nvidia-ctk")
    parser.add_argument("--version", action="version",
                        version="NVIDIA Container Toolkit CLI version %s (test stand-in)" % VERSION)
    commands = parser.add_subparsers(dest="command", required=True)
    runtime = commands.add_parser("runtime").add_subparsers(dest="action", required=True)
    configure = runtime.add_parser("configure")
    configure.add_argument("--runtime", default="docker")
    configure.add_argument("--config", default="/etc/docker/daemon.json")
    configure.add_argument("--set-as-default", action="store_true")
    configure.set_defaults(func=runtime_configure)
    cdi = commands.add_parser("cdi").add_subparsers(dest="action", required=True)
    generate = cdi.add_parser("generate")
    generate.add_argument("--output", default="/dev/stdout")
    generate.set_defaults(func=cdi_generate)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
