"""``python -m indexer`` runs the zhsearch command."""

from .cli import cli

cli()
