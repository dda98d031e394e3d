"""mmfuse's built-in plugins.

They implement exactly the hooks of :mod:`mmfuse.hookspecs` that a third-party plugin implements; the
only difference is that the core registers them from ``mmfuse.registry.DEFAULT_PLUGINS`` instead of
discovering them through the ``mmfuse`` entry-point group.
"""
