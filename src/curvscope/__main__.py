"""``python -m curvscope``: the command-line interface (same as the ``curvscope`` script)."""

from curvscope.cli import main

if __name__ == "__main__":
    main()
