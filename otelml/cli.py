"""The ``otelml`` command line, shaped like the collector's."""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import sys
from typing import Any

import yaml

from otelml import __version__
from otelml.component import Kind
from otelml.config import Config, parse
from otelml.confmap import ConfigError, apply_set, expand, explain_unset, load_files
from otelml.registry import Registry
from otelml.telemetry import configure_logging


def load_config(config_paths: list[str], assignments: list[str], registry: Registry) -> tuple[Config, dict]:
    """Merge, override, expand and validate; raises ConfigError listing every problem."""
    raw = load_files(config_paths)
    for assignment in assignments:
        raw = apply_set(raw, assignment)
    unset: dict[str, str] = {}
    raw = expand(raw, unset=unset)
    try:
        return parse(raw, registry), raw
    except ConfigError as error:
        raise ConfigError(explain_unset(error.problems, unset)) from None


def demo_config() -> str:
    """The path of config/demo.yaml as installed with otelml (package ``otelml.examples``), whatever the directory."""
    return str(importlib.resources.files("otelml.examples").joinpath("demo.yaml"))


def _add_config_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else []
    parser.add_argument(
        "--config",
        action="append",
        dest="configs",
        default=default,
        metavar="FILE",
        help="a YAML config file; repeat to merge several in order",
    )
    parser.add_argument(
        "--set",
        action="append",
        dest="sets",
        default=default,
        metavar="KEY=VALUE",
        help="override one setting, e.g. processors.batch.timeout=1s",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelml", description="Telemetry pipeline with online anomaly scoring.")
    parser.add_argument("--version", action="version", version=f"otelml {__version__}")
    _add_config_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (
        ("validate", "check the config and print every problem"),
        ("print-config", "print the resolved config with secrets redacted"),
    ):
        _add_config_options(commands.add_parser(name, help=help_text), suppress=True)
    commands.add_parser("components", help="list the registered components and their signals")
    from otelml.generator import add_generate_command

    add_generate_command(commands)
    from otelml.replay import add_replay_command

    _add_config_options(add_replay_command(commands), suppress=True)
    demo = commands.add_parser("demo", help="run config/demo.yaml (installed with otelml) with the generator feeding it")
    _add_config_options(demo, suppress=True)
    demo.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    demo.add_argument("--rate", type=float, default=50.0, help="traces per second from the generator")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    registry = Registry.default()
    if args.command == "components":
        return _components(registry)
    if args.command == "generate":
        from otelml.generator import run_generator

        return run_generator(args)
    if args.command == "demo" and not args.configs:
        args.configs = [demo_config()]
    if not args.configs:
        print("otelml: at least one --config FILE is required", file=sys.stderr)
        return 2
    try:
        config, raw = load_config(args.configs, args.sets, registry)
    except ConfigError as error:
        print("invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.command == "validate":
        print(f"configuration is valid: {len(config.pipelines)} pipelines")
        return 0
    if args.command == "print-config":
        print(yaml.safe_dump(_redacted(config), sort_keys=False), end="")
        return 0
    configure_logging(config.telemetry.logs.level)
    if args.command == "replay":
        from otelml.replay import run_replay

        return run_replay(config, registry, args)
    from otelml.service import Service, StartError

    if args.command == "demo":
        from otelml.generator import run_demo

        try:
            return asyncio.run(run_demo(config, registry, args))
        except StartError:
            return 1  # logged in one line by the service
    return asyncio.run(Service(config, registry).run())


def _components(registry: Registry) -> int:
    for factory in registry.all():
        if factory.kind is Kind.CONNECTOR:
            signals = ", ".join(f"{a.value}->{b.value}" for a, b in sorted(factory.connects))
        else:
            signals = ", ".join(sorted(s.value for s in factory.signals))
        print(f"{factory.kind.value:<10} {factory.type:<20} {factory.stability:<12} {signals}")
    return 0


def _redacted(config: Config) -> dict:
    """The resolved config with defaults filled in; secrets (SecretStr fields) print as stars."""
    document: dict[str, Any] = {}
    for kind in Kind:
        section = {str(i): c.model_dump(mode="json") for i, c in config.components[kind].items()}
        if section:
            document[kind.section] = section
    document["service"] = {
        "extensions": [str(e) for e in config.extensions],
        "pipelines": {
            str(p.id): {
                "receivers": [str(i) for i in p.receivers],
                "processors": [str(i) for i in p.processors],
                "exporters": [str(i) for i in p.exporters],
            }
            for p in config.pipelines.values()
        },
        "telemetry": config.telemetry.model_dump(mode="json", exclude_none=True),
        "shutdown_timeout": f"{config.shutdown_timeout}s",
    }
    return document
