"""A non-editable install finds its model: ``pip install .`` into a fresh venv, then generate.

Fast and offline: the new venv reuses the dependencies of the running interpreter (a ``.pth``
line pointing at its site-packages, so neither the build nor the install downloads anything)
and installs tunesmith itself from a copy of the source with ``--no-deps --no-build-isolation``.
Then ``tunesmith generate`` runs from a folder outside the source tree with the installed
package alone. Exit 0 when it composes; otherwise the failing step's output and exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(f"check_install: {' '.join(argv)} failed ({done.returncode})\n{done.stdout}{done.stderr}")
        raise SystemExit(1)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tunesmith-install-") as tmp:
        tmp = Path(tmp)
        source = tmp / "source"
        source.mkdir()
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        for name in ("src", "models"):
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        venv = tmp / "venv"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
        python = venv / "bin" / "python"
        site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                            text=True).strip())  # fmt: skip
        (site / "_tunesmith_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
        run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--no-index", str(source)], tmp, env)  # fmt: skip
        shutil.rmtree(source)  # the installed package alone must suffice
        where = subprocess.check_output([str(python), "-c", "from tunesmith.checkpoint import shipped_model_path as p; "
                                         "print(p())"], cwd=tmp, env=env, text=True).strip()  # fmt: skip
        if not where.startswith(str(venv)) or not Path(where).is_file():
            sys.stderr.write(f"check_install: the installed tunesmith looks for its model at {where}\n")
            return 1
        out = tmp / "melody"
        env["TUNESMITH_CACHE"] = str(tmp / "cache")
        run([str(venv / "bin" / "tunesmith"), "generate", "--bars", "2", "--formats", "json", "--seed", "1",
             "--out", str(out)], tmp, env)  # fmt: skip
        files = [p for p in out.rglob("*.json")]
        if not files or not any(json.loads(p.read_text(encoding="utf-8")) for p in files):
            sys.stderr.write(f"check_install: generate wrote no melody into {out}\n")
            return 1
    print("check_install: a non-editable install generates with its shipped model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
