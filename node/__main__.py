"""``python -m node ...`` runs the ``vhnode`` command line."""

from node.cli import main

if __name__ == "__main__":
    main()
