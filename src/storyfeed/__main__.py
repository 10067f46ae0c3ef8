"""`python -m storyfeed` and the `storyfeed` command."""

import sys


def main() -> None:
    """Start the CLI; a Ctrl-C while it is still loading is an interruption too."""
    try:
        from storyfeed.cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + "storyfeed: interrupted\n")
        sys.exit(130)
    run_cli()


if __name__ == "__main__":
    main()
