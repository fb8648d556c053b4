"""The ``dctload`` command (also ``python -m dctload``): one entry point for the tools.

dctload's own commands are listed here; packages installed beside it add theirs through
the ``dctload.commands`` entry-point group (setup.py's: ``bench``, and ``train``,
``evaluate`` and ``plot`` of ``nets``), loaded only when their command runs: dctload
imports neither package.
"""

from __future__ import annotations

import sys
from importlib import import_module, metadata

#: name -> (module with main(argv), one line of help)
BUILT_IN = {
    "stats": ("dctload.stats", "per-frequency normalization statistics of a folder"),
    "make-shapes": ("dctload.synthetic", "a labelled JPEG folder of procedural shapes (a quick training set)"),
    "prepare": ("dctload.prepare", "a JPEG folder resized and requantized on coefficients, for fast loading"),
}


def plugins() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group="dctload.commands")}


def usage(commands: dict[str, str]) -> str:
    width = max(map(len, commands))
    lines = [f"  {name.ljust(width)}  {text}" for name, text in commands.items()]
    return ("usage: dctload COMMAND [ARGS...]   (dctload COMMAND --help for its options)\n\n"
            "frequency-domain JPEG data loading for PyTorch\n\ncommands:\n" + "\n".join(lines) + "\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    found = plugins()
    commands = {name: text for name, (_, text) in BUILT_IN.items()}
    # a plugin's own --help says what it does: listing it imports nothing of its package
    commands.update({name: f"(from {ep.value.split(':')[0]}; dctload {name} --help)" for name, ep in found.items()})
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(commands), file=sys.stdout if argv else sys.stderr, end="")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name in BUILT_IN:
        return import_module(BUILT_IN[name][0]).main(rest) or 0
    if name in found:
        return found[name].load()(rest) or 0
    print(f"dctload: unknown command {name!r}\n\n" + usage(commands), file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
