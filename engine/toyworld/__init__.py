"""The toy world: a procedural renderer with captions and true masks, a judge that reads pictures back, and the
training and export of the built-in ``toy`` model (``python -m engine.toyworld.train``)."""

__all__: list[str] = []
