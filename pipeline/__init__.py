"""Entry points: ``python -m pipeline.run`` (one run or a sweep) and, later, ``python -m pipeline.compare``."""
