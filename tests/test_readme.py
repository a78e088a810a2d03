"""README's two first commands, run as written on a fresh clone, and CI running the same one.

The clone gets no virtual environment and sees the machine as a newcomer's Debian has it: the
stock PATH, where there is no `python` command and `python3` is the system interpreter whose pip
refuses to install (PEP 668). The commands must set up `.venv` themselves.

The test command would run this whole suite again (this test included) inside the test; pytest's
own PYTEST_ADDOPTS variable, which the command honours as written, narrows it to one small test
file: what is proven is that the command creates the environment, installs every test dependency
and runs pytest there, not the suite a second time.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def readme_commands():
    """The commands of README's first shell block (comments left out)."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run's command is README's second command, character for character."""
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(readme_commands()) == 2
    assert commands == [readme_commands()[1]]


@pytest.mark.timeout(1800)  # two installs into new environments (from the package index or its cache)
def test_readme_commands_work_as_written_in_a_fresh_clone(tmp_path):
    """In a fresh clone of HEAD, without python or a venv: command 1 writes output.mp3 with
    speech in it, command 2 installs the test dependencies and runs pytest."""
    import av

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    subprocess.run(["git", "checkout", "-q", head], cwd=clone, check=True)
    assert not (clone / ".venv").exists()
    assert shutil.which("python", path=DEBIAN_PATH) is None, "this machine's stock PATH has a python command"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "LMNT_API_KEY", "LMNT_BASE_URL")}
    env["PATH"] = DEBIAN_PATH
    main_job, test_job = readme_commands()

    done = subprocess.run(["bash", "-c", main_job], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    with av.open(str(clone / "output.mp3")) as container:
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    assert seconds > 1.0
    python = str(clone / ".venv" / "bin" / "python")
    where = subprocess.run([python, "-c", "import lmnt_sync; print(lmnt_sync.__file__)"],
                           cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(clone / "lmnt_sync" / "__init__.py")

    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider tests/test_wordclock.py"
    done = subprocess.run(["bash", "-c", test_job], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert re.search(r"^=+ \d+ passed in ", done.stdout, re.M), done.stdout[-2000:]
    assert (clone / ".venv-legacy" / "bin" / "python").exists()


def test_readme_links_resolve_and_the_license_is_there():
    """Every relative link of README (also the package description) names a file of the
    repository, the wire facts among them; LICENSE holds the MIT licence setup.cfg declares."""
    readme = (ROOT / "README.md").read_text()
    links = [target for target in re.findall(r"\]\(([^)#]+)\)", readme) if "://" not in target]
    assert "docs/PROTOCOL.md" in links
    for target in links:
        assert (ROOT / target).is_file(), target
    assert "shared folder" not in readme
    assert "license = MIT" in (ROOT / "setup.cfg").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    protocol = (ROOT / "docs" / "PROTOCOL.md").read_text()
    for section in ("### 1.1", "### 1.5", "### 1.6", "### 2.1", "### 2.4", "### 2.7", "## 5."):
        assert section in protocol  # the code cites these sections
