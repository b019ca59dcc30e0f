"""The public surface the README teaches: every name it imports or calls from kitcn_temporal
exists, and none of them lives in a private module (a leading underscore in the path)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
#: ``from kitcn_temporal.x import a, b`` (also across parenthesised lines) anywhere in the README.
_FROM = re.compile(r"from (kitcn_temporal(?:\.\w+)*) import \(?([\w, \n]+?)\)?(?:\s*#|\n|`|$)")
#: ``kitcn_temporal.name`` written out (``kitcn_temporal.run(main())``, ``kitcn_temporal.sql``).
_DOTTED = re.compile(r"\bkitcn_temporal((?:\.\w+)+)")


def _imported() -> list[tuple[str, str]]:
    names = []
    for module, listed in _FROM.findall(README):
        names += [(module, n.strip()) for n in listed.replace("\n", ",").split(",") if n.strip()]
    for dotted in _DOTTED.findall(README):
        parts = ["kitcn_temporal", *dotted.lstrip(".").split(".")]
        # The longest importable module prefix, then the name in it (``kitcn_temporal.sql``
        # is a module in ``kitcn_temporal``; ``kitcn_temporal.testing.TIME_SKIPPING_ARGS`` a name).
        cut = max(i for i in range(1, len(parts)) if _importable(".".join(parts[:i])))
        names.append((".".join(parts[:cut]), parts[cut]))
    return sorted(set(names))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


NAMES = _imported()


def test_the_readme_names_public_things() -> None:
    assert len(NAMES) >= 15, NAMES  # the README teaches the library through these


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_a_name_the_readme_uses_imports_from_a_public_module(module: str, name: str) -> None:
    assert not any(part.startswith("_") for part in module.split(".")), f"{module} is private"
    assert not name.startswith("_"), f"{module}.{name} is private"
    found = hasattr(importlib.import_module(module), name) or _importable(f"{module}.{name}")
    assert found, f"{module} has no {name}"


def test_prometheus_config_is_public() -> None:
    import kitcn_temporal

    assert "prometheus_config" in kitcn_temporal.__all__
