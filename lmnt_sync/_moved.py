"""Old module paths that keep working after the modules moved (issue 14's layout).

``import lmnt_sync.player`` gives the module ``lmnt_sync.playback.player`` itself (the same
object, under both names), imported only when the old name is first used, so an optional
dependency a module needs (anywidget for the browser player) is still needed only then.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Optional, Sequence

__all__ = ["MOVED", "install"]

#: old module name -> where it lives now (the documented public paths only)
MOVED = {
    "lmnt_sync.player": "lmnt_sync.playback.player",
    "lmnt_sync.callbacks": "lmnt_sync.playback.callbacks",
    "lmnt_sync.browser_player": "lmnt_sync.playback.browser_player",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names and loads each as the module it moved to."""

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(MOVED[spec.name])  # raises what importing it raises
        spec.loader_state = module.__spec__  # the import system replaces it next: put back below
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module was executed under its new name. Give it back its own spec."""
        alias_spec = module.__spec__
        if alias_spec is not None and alias_spec.loader_state is not None:
            module.__spec__ = alias_spec.loader_state


def install() -> None:
    """Make the old names importable; idempotent.

    The finder goes first: a stale file at an old path (another checkout's editable install,
    an old copy left in site-packages) must not win over the module that moved.
    """
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
