"""Run Python as if some installed packages were missing (an environment without an extra).

    python tests/without_modules.py numpy,aiohttp -m lmnt_sync.server --help
    python tests/without_modules.py av -c "import lmnt_sync; ..."

A finder placed first on ``sys.meta_path`` refuses the named top-level
packages (and their submodules) the way Python does for an absent package:
``ModuleNotFoundError: No module named 'numpy'``. Everything else imports
normally, so this is the package as a user without the extra has it.
"""
import runpy
import sys


class Blocker:
    """A meta path finder that reports the blocked packages as not installed."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main():
    blocked, mode, target, *rest = sys.argv[1:]
    sys.meta_path.insert(0, Blocker(blocked.split(",")))
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit("usage: without_modules.py MOD[,MOD...] (-m MODULE | -c CODE) [ARGS...]")


if __name__ == "__main__":
    main()
