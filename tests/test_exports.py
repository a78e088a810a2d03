"""The public surface: every module declares __all__, and the package imports no optional deps."""
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import lmnt_sync
from lmnt_sync import errors


def test_every_module_declares_all():
    """Each module of lmnt_sync has an __all__ naming things it really defines."""
    for info in pkgutil.walk_packages(lmnt_sync.__path__, "lmnt_sync."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), f"{info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"


def test_importing_the_package_loads_no_optional_dependency():
    """`import lmnt_sync` pulls in neither the server stack nor pyaudio."""
    code = "import sys, lmnt_sync; print(sorted(m for m in ('aiohttp', 'av', 'pyaudio', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_exception_root():
    """Every exception class in errors derives from LmntError."""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.LmntError), name


def test_status_classes_map_like_the_official_sdk():
    """HTTP statuses map to the SDK's error classes."""
    expected = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                404: "NotFoundError", 409: "ConflictError", 422: "UnprocessableEntityError",
                429: "RateLimitError", 500: "InternalServerError", 503: "InternalServerError", 418: "APIStatusError"}
    for status, name in expected.items():
        assert errors.status_error_class(status).__name__ == name


def test_timeout_is_also_the_builtin():
    """Our TimeoutError can be caught as the builtin one."""
    assert issubclass(errors.TimeoutError, TimeoutError)
    assert issubclass(errors.ConfigurationError, ValueError)


def test_the_version_has_its_own_module_that_setup_cfg_reads():
    """lmnt_sync/_version.py imports nothing (no cycle), and the build reads the version there."""
    import ast

    from setuptools.config.setupcfg import read_configuration

    from lmnt_sync import _version

    root = Path(lmnt_sync.__file__).resolve().parent.parent
    tree = ast.parse(Path(_version.__file__).read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert lmnt_sync.__version__ == _version.__version__
    assert read_configuration(str(root / "setup.cfg"))["metadata"]["version"] == _version.__version__
    with open(root / "setup.cfg") as config:
        assert "version = attr: lmnt_sync._version.__version__" in config.read()


# Module paths from before issue 14's layout: they import the moved module itself.
OLD_PATHS = {
    "lmnt_sync.player": ("lmnt_sync.playback.player", "Player"),
    "lmnt_sync.callbacks": ("lmnt_sync.playback.callbacks", "tk_executor"),
    "lmnt_sync.browser_player": ("lmnt_sync.playback.browser_player", "speak_in_browser"),
}


def test_old_module_paths_import_the_moved_modules():
    """`import lmnt_sync.player` (and the other documented old paths) is the module in playback/."""
    code = (
        "import importlib, sys\n"
        f"for old, (new, name) in {OLD_PATHS!r}.items():\n"
        "    module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    assert module.__spec__.name == new and getattr(module, name) is not None, old\n"
        "from lmnt_sync.player import Player\n"
        "from lmnt_sync import Player as Same\n"
        "assert Player is Same\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_entry_points_still_work():
    """`python -m lmnt_sync`, the console script's target (lmnt_sync.cli:main) and `lmnt_sync.cli.main`."""
    done = subprocess.run([sys.executable, "-m", "lmnt_sync", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"lmnt-sync {lmnt_sync.__version__}", done.stderr
    from lmnt_sync.cli import main
    from lmnt_sync.cli.main import main as same

    assert main is same
    with open(Path(lmnt_sync.__file__).resolve().parent.parent / "setup.cfg") as config:
        assert "lmnt-sync = lmnt_sync.cli:main" in config.read()


def test_the_client_core_loads_neither_the_cli_nor_the_server():
    """`import lmnt_sync` loads the core and the Player class only: no CLI, server or codec module."""
    code = "import sys, lmnt_sync; print(sorted(m for m in sys.modules if m.startswith('lmnt_sync.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert not {m for m in loaded if m.split(".")[1] in ("cli", "server", "codecs")}
    assert "lmnt_sync.playback.player" in loaded


def test_the_cli_and_the_server_share_one_encoder_module():
    """The CLI encodes with lmnt_sync.codecs, the module the server encodes with; it needs no server module."""
    import ast

    root = Path(lmnt_sync.__file__).resolve().parent
    for path in (root / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "codecs" in node.module:
                assert node.level == 2 and node.module == "codecs", f"{path.name} imports {node.module}"
    code = ("import sys, lmnt_sync.codecs, lmnt_sync.server.stream as stream; "
            "assert stream.Encoder is lmnt_sync.codecs.Encoder; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
    code = "import sys, lmnt_sync.codecs; print(sorted(m for m in sys.modules if m.startswith('lmnt_sync.server')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
