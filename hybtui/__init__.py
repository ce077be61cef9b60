"""hybtui: a terminal experiment manager for multilingual dense retrievers trained
with hybrid batch sampling (docs/ARCHITECTURE.md describes the layers of this package)."""

__version__ = "0.1.0"
