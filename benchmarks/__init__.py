"""Side-by-side benchmarks against peers; run ``python benchmarks/run.py`` (see README.md)."""
