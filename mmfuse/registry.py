"""The registry: named components and presets, filled by plugins on first lookup.

This module holds the only global mutable state of mmfuse: :data:`REGISTRIES` (one :class:`Registry`
per kind of component) and the plugin manager that fills them. Built-in plugins are registered from :data:`DEFAULT_PLUGINS` (so a
source checkout works without install metadata); third-party plugins come from the ``mmfuse``
entry-point group unless ``MMFUSE_DISABLE_PLUGIN_AUTOLOAD`` is set.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pluggy

from mmfuse import hookspecs
from mmfuse.errors import DuplicateNameError, PluginError, UnknownNameError, UsageError

__all__ = [
    "REGISTRIES",
    "Registry",
    "RegistryEntry",
    "create_combiner",
    "create_encoder",
    "create_fusion",
    "create_head",
    "create_metadata_encoder",
    "failed_plugins",
    "get_registry",
    "list_combiners",
    "list_dataset_formats",
    "list_encoders",
    "list_fusions",
    "list_heads",
    "list_metadata_encoders",
    "list_trackers",
    "register",
    "register_combiner",
    "register_dataset_format",
    "register_encoder",
    "register_fusion",
    "register_head",
    "register_metadata_encoder",
    "register_plugin",
    "register_preset",
    "register_tracker",
    "unregister_plugin",
]

ENTRY_POINT_GROUP = "mmfuse"
AUTOLOAD_ENV = "MMFUSE_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PACKAGE = "mmfuse_plugins"  # installed from the plugins/ folder
DEFAULT_PLUGINS: tuple[str, ...] = tuple(
    f"{BUILTIN_PACKAGE}.{name}"
    for name in (
        "ammfm_presets",
        "timm_encoders",
        "fusions",
        "heads",
        "combiners",
        "metadata_encoders",
        "fusionm4net",
        "tformer",
        "cafnet",
        "incep_com",
        "dataset_formats",
        "trackers",
    )
)
USER_PROVIDER = "__user__"


@dataclass(frozen=True)
class RegistryEntry:
    """A registered component and the plugin that provided it."""

    name: str
    obj: Callable
    provider: str


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class Registry:
    """Name → component for one kind (``"encoder"``, ``"fusion"``, ``"head"``...; presets hold plain data)."""

    def __init__(self, kind: str, *, callable_entries: bool = True) -> None:
        self.kind = kind
        self.callable_entries = callable_entries
        self._entries: dict[str, RegistryEntry] = {}

    @property
    def hook_name(self) -> str:
        """The hook through which plugins fill this registry (``register_encoders``, ``register_dataset_formats``)."""
        return f"register_{self.kind.replace(' ', '_')}s"

    def register(self, name: str, obj: Callable, *, override: bool = False, provider: str = USER_PROVIDER):
        """Add ``obj`` under ``name``; a taken name is an error unless ``override=True``."""
        ensure_plugins_loaded()
        if not isinstance(name, str) or not name:
            raise UsageError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if self.callable_entries and not callable(obj):
            raise PluginError(f"{self.kind} {name!r} must be a class or factory, got {obj!r}")
        taken = self._entries.get(name)
        if taken is not None and not override:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered by {taken.provider!r}; "
                "pass override=True to replace it"
            )
        self._entries[name] = RegistryEntry(name, obj, provider)
        return obj

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def unregister_provider(self, provider: str) -> None:
        """Remove every entry that ``provider`` (a plugin name) registered."""
        for name in [name for name, entry in self._entries.items() if entry.provider == provider]:
            del self._entries[name]

    def __contains__(self, name: str) -> bool:
        ensure_plugins_loaded()
        return name in self._entries

    def entry(self, name: str) -> RegistryEntry:
        ensure_plugins_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        msg = f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}"
        if _failed_plugins:
            msg += f". Plugins that failed to load: {', '.join(sorted(_failed_plugins))}"
        return msg

    def names(self, pattern: str | None = None) -> list[str]:
        ensure_plugins_loaded()
        names = self._entries if pattern is None else fnmatch.filter(self._entries, pattern)
        return sorted(names, key=_natural_key)


# Every kind of component, in the order plugins' ``register_<kind>s`` hooks are called. The kind is the
# one name of a registry: in messages ("unknown fusion 'x'"), in ``register(kind, name)`` and in config.json's
# providers (:data:`mmfuse.presets.COMPONENT_FIELDS`).
REGISTRIES: dict[str, Registry] = {
    registry.kind: registry
    for registry in (
        Registry("encoder"),
        Registry("fusion"),
        Registry("metadata encoder"),
        Registry("combiner"),
        Registry("head"),  # head implementations; mmfuse.HEADS names the model's three branches
        Registry("preset", callable_entries=False),  # plain model-config dicts
        Registry("dataset format"),  # mmfuse.data.DatasetFormat subclasses (or factories)
        Registry("tracker"),  # mmfuse.tracking.Tracker subclasses (or factories); train.track
    )
}
ENCODERS = REGISTRIES["encoder"]
FUSIONS = REGISTRIES["fusion"]
METADATA_ENCODERS = REGISTRIES["metadata encoder"]
COMBINERS = REGISTRIES["combiner"]
PRESETS = REGISTRIES["preset"]
DATASET_FORMATS = REGISTRIES["dataset format"]
TRACKERS = REGISTRIES["tracker"]


def get_registry(kind: str) -> Registry:
    """The registry of ``kind`` (a key of :data:`REGISTRIES`), or an error listing the kinds."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise UnknownNameError(
            f"unknown registry kind {kind!r}; available: {', '.join(REGISTRIES)}"
        ) from None


_plugin_manager: pluggy.PluginManager | None = None
_failed_plugins: dict[str, str] = {}


def _call_register_hooks(pm: pluggy.PluginManager, plugin_name: str | None = None) -> None:
    # Call each implementation (or only ``plugin_name``'s) with a `register` bound to its own plugin
    # name, so every entry records which plugin provided it.
    for registry in REGISTRIES.values():
        for impl in getattr(pm.hook, registry.hook_name).get_hookimpls():
            if plugin_name is None or impl.plugin_name == plugin_name:
                call_hookimpl(impl, register=functools.partial(registry.register, provider=impl.plugin_name))


def call_hookimpl(impl: pluggy.HookImpl, **arguments: object) -> object:
    """Call one hook implementation with only the arguments it names.

    pluggy lets an implementation take a subset of its spec's arguments (so a spec can grow without
    breaking plugins); calling implementations one by one must keep that promise too.
    """
    return impl.function(**{name: arguments[name] for name in impl.argnames})


def ensure_plugins_loaded() -> pluggy.PluginManager:
    """Create the plugin manager and let every plugin register its components (once)."""
    global _plugin_manager
    if _plugin_manager is not None:
        return _plugin_manager
    pm = pluggy.PluginManager("mmfuse")
    pm.add_hookspecs(hookspecs)
    _plugin_manager = pm  # set first: plugins may import mmfuse and register while loading
    for module_name in DEFAULT_PLUGINS:
        pm.register(_import_builtin(module_name), name=module_name)
    if not os.environ.get(AUTOLOAD_ENV):
        _load_entry_points(pm)
    pm.check_pending()
    _call_register_hooks(pm)
    return pm


def _import_builtin(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != BUILTIN_PACKAGE:
            raise
    # A source checkout that was never installed: the package is the plugins/ folder beside mmfuse/.
    return importlib.import_module("plugins" + module_name[len(BUILTIN_PACKAGE) :])


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the library down with it
            _failed_plugins[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"mmfuse plugin {ep.name!r} ({ep.value}) failed to import and was skipped: {exc}",
                stacklevel=2,
            )
            continue
        pm.register(plugin, name=ep.name)


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (a module or class with hook implementations) at run time."""
    pm = ensure_plugins_loaded()
    name = pm.register(plugin, name=name)
    _call_register_hooks(pm, name)
    return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin and every component it provided."""
    pm = ensure_plugins_loaded()
    pm.unregister(name=name)
    for registry in REGISTRIES.values():
        registry.unregister_provider(name)


def failed_plugins() -> dict[str, str]:
    """Plugins from entry points that failed to import, with the reason."""
    ensure_plugins_loaded()
    return dict(_failed_plugins)


def _caller_module() -> str:
    """The module that called into this one: it provides what it registers."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", USER_PROVIDER) if frame is not None else USER_PROVIDER


def register(kind: str, name: str, *, override: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register a component of ``kind`` (a key of :data:`REGISTRIES`) under ``name``.

    ``@register("fusion", "gated")`` is ``@register_fusion("gated")``; the entry records the calling
    module as its provider. A taken name raises :class:`DuplicateNameError` unless ``override=True``.
    """
    target = get_registry(kind)
    provider = _caller_module()

    def decorator(obj: Callable) -> Callable:
        return target.register(name, obj, override=override, provider=provider)

    return decorator


def register_encoder(name: str, *, override: bool = False) -> Callable:
    """Decorator: register an encoder factory (or :class:`mmfuse.Encoder` subclass) under ``name``."""
    return register("encoder", name, override=override)


def register_fusion(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.FusionBlock` subclass (or factory) under ``name``."""
    return register("fusion", name, override=override)


def register_metadata_encoder(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.MetadataEncoder` subclass (or factory) under ``name``."""
    return register("metadata encoder", name, override=override)


def register_combiner(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.Combiner` subclass (or factory) under ``name``."""
    return register("combiner", name, override=override)


def register_head(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.Head` subclass (or factory) under ``name``."""
    return register("head", name, override=override)


def register_dataset_format(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.data.DatasetFormat` subclass under ``name`` (``data.format``)."""
    return register("dataset format", name, override=override)


def register_tracker(name: str, *, override: bool = False) -> Callable:
    """Decorator: register a :class:`mmfuse.tracking.Tracker` subclass under ``name`` (``train.track``)."""
    return register("tracker", name, override=override)


def list_trackers(pattern: str | None = None) -> list[str]:
    """Registered tracker names (what ``train.track`` and ``--track`` accept), glob-filtered."""
    return TRACKERS.names(pattern)


def list_dataset_formats(pattern: str | None = None) -> list[str]:
    """Registered dataset format names (``data.format``, ``mmfuse data check FORMAT``), glob-filtered."""
    return DATASET_FORMATS.names(pattern)


def list_encoders(pattern: str | None = None) -> list[str]:
    """Registered encoder names, optionally filtered by a glob such as ``"*swin*"``."""
    return ENCODERS.names(pattern)


def list_fusions(pattern: str | None = None) -> list[str]:
    """Registered fusion block names, optionally filtered by a glob."""
    return FUSIONS.names(pattern)


def encoder_entry(name: str) -> RegistryEntry:
    """The registry entry for ``name``, asking ``resolve_encoder`` plugins for unregistered names."""
    if name in ENCODERS:
        return ENCODERS.entry(name)
    # In pluggy's call order (last registered, tryfirst first), so the answer is the one
    # ``hook.resolve_encoder(name=...)`` would give, and the entry records which plugin gave it.
    for impl in reversed(ensure_plugins_loaded().hook.resolve_encoder.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue  # wrappers surround the call; they do not answer it
        factory = call_hookimpl(impl, name=name)
        if factory is not None:
            return RegistryEntry(name, factory, impl.plugin_name)
    raise UnknownNameError(
        ENCODERS.unknown_message(name) + " (or any timm model name that supports features_only)"
    )


def create_encoder(name: str, *, pretrained: bool = False, **options):
    """Build the encoder registered as ``name`` (or any name a ``resolve_encoder`` plugin accepts)."""
    return encoder_entry(name).obj(pretrained=pretrained, **options)


def create_fusion(name: str, primary_channels: int, auxiliary_channels: int, **options):
    """Build the fusion block registered as ``name`` for the given channel counts."""
    return FUSIONS.entry(name).obj(primary_channels, auxiliary_channels, **options)


def list_metadata_encoders(pattern: str | None = None) -> list[str]:
    return METADATA_ENCODERS.names(pattern)


def list_combiners(pattern: str | None = None) -> list[str]:
    return COMBINERS.names(pattern)


def list_heads(pattern: str | None = None) -> list[str]:
    return REGISTRIES["head"].names(pattern)


def create_metadata_encoder(name: str, in_features: int, **options):
    """Build the metadata encoder registered as ``name`` for ``in_features`` encoded values."""
    return METADATA_ENCODERS.entry(name).obj(in_features, **options)


def create_combiner(
    name: str, primary_features: int, auxiliary_features: int, metadata_features: int = 0, **options
):
    """Build the fusion-head combiner registered as ``name``."""
    return COMBINERS.entry(name).obj(primary_features, auxiliary_features, metadata_features, **options)


def create_head(name: str, in_features: int, tasks, **options):
    """Build the multi-task head registered as ``name``."""
    return REGISTRIES["head"].entry(name).obj(in_features, tasks, **options)


def register_preset(name: str, config: dict, *, override: bool = False) -> dict:
    """Register a named model configuration (plain data) at run time; plugins use ``register_presets``.

    A taken name (``ammfm-swin`` included) raises :class:`DuplicateNameError` unless ``override=True``.
    """
    if not isinstance(config, dict):
        raise PluginError(f"preset {name!r} must be a dict of model config fields, got {config!r}")
    return PRESETS.register(name, config, override=override, provider=_caller_module())
