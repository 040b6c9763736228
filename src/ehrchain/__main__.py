"""``python -m ehrchain`` runs the command line, like the ``ehrchain`` script."""

from ehrchain.cli.main import main

main()
