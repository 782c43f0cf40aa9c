"""Files shipped inside the package: the prompt templates and the App manifest.

They live at the repository's top level (`prompts/`, `app.yml`) and pyproject.toml maps
them into the wheel as `bot.templates` and `bot.manifest`, so an editable install and
`pip install .` find them the same way.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, checkout_dir: Path) -> Path:
    """The installed copy; in a source checkout run from its root, the top-level folder."""
    spec = find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if (CHECKOUT / "pyproject.toml").is_file() and checkout_dir.is_dir():
        return checkout_dir
    raise RuntimeError(f"{package} is missing from this install: reinstall agent-dispatch")


def prompts_dir() -> Path:
    return _package_dir("bot.templates", CHECKOUT / "prompts")


def app_manifest() -> Path:
    return _package_dir("bot.manifest", CHECKOUT) / "app.yml"
