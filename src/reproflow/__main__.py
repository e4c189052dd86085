"""``python -m reproflow ...``: the CLI, for an interpreter whose scripts folder is not on PATH
(``reproflow.snakemake.shell()`` runs its jobs through the Snakefile's own interpreter)."""

from .cli import main

main()
