"""One file per engine; each defines ``ENGINE``, a subclass of :class:`targets.engine.Engine`."""
