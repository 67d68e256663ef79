"""``python -m sufdec`` runs the command-line interface."""

from sufdec.cli.app import main

if __name__ == "__main__":
    main()
