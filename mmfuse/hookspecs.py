"""Hook specifications: the whole contract between mmfuse and a plugin.

A plugin is a module implementing any of these hooks with ``@mmfuse.hookimpl``. Built-in plugins
(``mmfuse_plugins.*``) implement exactly the same hooks as third-party ones, which arrive through the
``mmfuse`` entry-point group. Implementations may accept a subset of the arguments, so specs can grow.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mmfuse")
hookimpl = pluggy.HookimplMarker("mmfuse")


@hookspec
def register_encoders(register: Callable[..., object]) -> None:
    """Register encoder factories with ``register(name, factory, override=False)``.

    ``factory(pretrained=False, **options)`` must return an :class:`mmfuse.Encoder`. ``register`` is the
    same function the ``@mmfuse.register_encoder(name)`` decorator uses.
    """


@hookspec
def register_fusions(register: Callable[..., object]) -> None:
    """Register fusion blocks with ``register(name, cls, override=False)``.

    ``cls(primary_channels, auxiliary_channels, **options)`` must return an :class:`mmfuse.FusionBlock`.
    """


@hookspec(firstresult=True)
def resolve_encoder(name: str) -> Callable[..., object] | None:
    """Return an encoder factory for a ``name`` nobody registered (e.g. any timm model), else ``None``."""


@hookspec
def register_metadata_encoders(register: Callable[..., object]) -> None:
    """Register metadata encoders with ``register(name, cls, override=False)``.

    ``cls(in_features, **options)`` must return an :class:`mmfuse.MetadataEncoder`.
    """


@hookspec
def register_combiners(register: Callable[..., object]) -> None:
    """Register fusion-head combiners with ``register(name, cls, override=False)``.

    ``cls(primary_features, auxiliary_features, metadata_features, **options)`` must return an
    :class:`mmfuse.Combiner`.
    """


@hookspec
def register_heads(register: Callable[..., object]) -> None:
    """Register multi-task heads with ``register(name, cls, override=False)``.

    ``cls(in_features, tasks, **options)`` must return an :class:`mmfuse.Head`.
    """


@hookspec
def register_presets(register: Callable[..., object]) -> None:
    """Register named model configurations with ``register(name, config, override=False)``.

    ``config`` is plain data: the fields :func:`mmfuse.build_model` accepts (registry names and options).
    """


@hookspec
def register_dataset_formats(register: Callable[..., object]) -> None:
    """Register dataset formats with ``register(name, cls, override=False)``.

    ``cls()`` must return a :class:`mmfuse.data.DatasetFormat`; ``name`` is what ``data.format`` and
    ``mmfuse data check FORMAT`` accept.
    """


@hookspec
def register_trackers(register: Callable[..., object]) -> None:
    """Register experiment trackers with ``register(name, cls, override=False)``.

    ``cls()`` must return a :class:`mmfuse.tracking.Tracker`; ``name`` is what ``train.track`` and
    ``mmfuse train --track`` accept.
    """
