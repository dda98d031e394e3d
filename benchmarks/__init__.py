"""mmfuse benchmark suite (run with ``python benchmarks/run.py``; see docs/performance.md)."""
