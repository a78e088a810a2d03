"""The public surface: every module declares __all__, and the package imports no optional deps."""
import importlib
import pkgutil
import subprocess
import sys

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
    from pathlib import Path

    from setuptools.config.setupcfg import read_configuration

    from lmnt_sync import _version

    root = Path(lmnt_sync.__file__).resolve().parent.parent
    tree = ast.parse(Path(_version.__file__).read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert lmnt_sync.__version__ == _version.__version__
    assert read_configuration(str(root / "setup.cfg"))["metadata"]["version"] == _version.__version__
    with open(root / "setup.cfg") as config:
        assert "version = attr: lmnt_sync._version.__version__" in config.read()
