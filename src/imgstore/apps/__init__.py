"""Command-line tools, viewer and integrations.

The names the original's ``imgstore.apps`` module had are importable from here; each is loaded
on first use, so importing ``imgstore.apps`` stays cheap.
"""

from __future__ import annotations

import importlib

#: name -> module (relative to this package's parent) that defines it
_EXPORTS = {
    "main_viewer": ".apps.cli",
    "main_saver": ".apps.cli",
    "main_test": ".apps.cli",
    "generate_timecodes": ".apps.timecodes",
    "main_generate_timecodes": ".apps.timecodes",
    "new_for_filename": ".stores",
    "new_for_format": ".stores",
    "get_supported_formats": ".stores",
    "motif_get_parse_true_fps": ".util",
    "motif_get_recording_timezone": ".util",
    "new_window": ".ui",
    "FontRendererStatusBar": ".font",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name == "_log":
        import logging

        return logging.getLogger("imgstore.apps")
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], "imgstore"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
