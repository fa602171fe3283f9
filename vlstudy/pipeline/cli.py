"""The ``vlstudy`` command.

    vlstudy run STAGE [--set KEY=VALUE ...]   one stage's notebook (the command of a dvc.yaml stage)
    vlstudy study [--profile P] [--set K=V] [--jobs N] [--force] [TARGET ...]
                                              the whole study (dvc repro; N stages at a time) in the profile's
                                              workspace
    vlstudy lab [--profile P]                 JupyterLab on the profile's notebooks
    vlstudy sync                              rewrite notebooks' parameters cells and dvc.yaml's code deps
    vlstudy params [--profile P] [STAGE ...]  the resolved params (recipe applied) of a profile

Exit codes: 0 success, 1 a stage failed, 2 bad parameters or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from vlstudy.config import ParamError, to_dict

__all__ = ["main"]


def _params(profile: str, stages: list[str]) -> int:
    from vlstudy.config import RECIPE_SECTION
    from vlstudy.pipeline.runner import validate_section
    from vlstudy.pipeline.stage import find_root
    from vlstudy.pipeline.study import profile_params

    params = profile_params(find_root(), profile)
    recipe = params.get(RECIPE_SECTION, {})
    resolved = {s: to_dict(validate_section(s, params[s] or {}, recipe)) for s in stages or params
                if s != RECIPE_SECTION}
    print(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlstudy", description="vlstudy pipeline commands")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one stage notebook (the command of a dvc.yaml stage)")
    run.add_argument("stage")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="a DVC matrix cell's value for one key of the section")
    run.add_argument("--kernel", default="vlstudy")
    run.add_argument("--verbose", action="store_true", help="stream the notebook's output")
    for name, text in (("study", "run the whole study (dvc repro) under a profile"),
                       ("lab", "open JupyterLab on a profile's notebooks"),
                       ("params", "print the resolved params of a profile")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", default="default")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one params key of the profile's workspace, e.g. data.source.root=/mnt/youku")
        p.add_argument("targets", nargs="*")
        if name == "study":
            p.add_argument("--jobs", type=int, default=1,
                           help="stages at a time, each with cores/jobs torch threads (1: plain dvc repro)")
            p.add_argument("--force", action="store_true", help="run every stage, changed or not")
    sub.add_parser("sync", help="rewrite notebooks' parameters cells and dvc.yaml's code deps from the sources")
    args = parser.parse_args(argv)

    try:
        if args.command == "run":
            from vlstudy.pipeline.runner import parse_overrides, run_stage

            overrides = parse_overrides(args.overrides, f"params.yaml: {args.stage}")
            return run_stage(args.stage, overrides, kernel=args.kernel, verbose=args.verbose)
        if args.command == "study":
            from vlstudy.pipeline.runner import parse_overrides
            from vlstudy.pipeline.study import run_study

            return run_study(args.profile, args.targets, parse_overrides(args.overrides, "--set"), args.jobs,
                             args.force)
        if args.command == "lab":
            from vlstudy.pipeline.study import open_lab

            return open_lab(args.profile, args.targets)
        if args.command == "params":
            return _params(args.profile, args.targets)
        if args.command == "sync":
            from vlstudy.pipeline.deps import sync_deps
            from vlstudy.pipeline.notebooks import sync_parameters
            from vlstudy.pipeline.stage import find_root

            root = find_root()
            sync_parameters(root)
            print("dvc.yaml code deps " + ("rewritten" if sync_deps(root) else "already in sync"))
            return 0
    except ParamError as e:
        print(f"vlstudy: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlstudy: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
