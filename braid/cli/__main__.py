"""``python -m braid.cli``: the ``braid`` command without its console script."""

from braid.cli.app import main

if __name__ == "__main__":
    main()
