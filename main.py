"""``python main.py <command> ...`` is the same CLI as the ``chimera`` console script."""

from engine.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
