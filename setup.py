"""Build hook: ship the trained model inside the package.

``models/erk.pt`` stays at the repository root (README, Makefile and the docs name it there);
a build copies it (and its model card) into ``tunesmith/models/`` of the wheel, so a
non-editable ``pip install .`` finds it with ``importlib.resources``. Everything else about the
build is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"
SHIPPED = ("erk.pt", "erk.md", "harmony.json", "harmony.md")


class BuildWithModel(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads models/ in place
            return
        target = Path(self.build_lib) / "tunesmith" / "models"
        self.mkpath(str(target))
        for name in SHIPPED:
            if not (MODELS / name).is_file():
                raise SystemExit(f"cannot build tunesmith: {MODELS / name} is missing")
            self.copy_file(str(MODELS / name), str(target / name))


setup(cmdclass={"build_py": BuildWithModel})
