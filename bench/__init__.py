"""lossbench's performance benchmarks: one script per figure of issue #7 (see bench/README.md)."""
