"""One error hierarchy, drawn whole in ``migration/errors.py``'s docstring."""

from __future__ import annotations

import importlib
import pkgutil
import re

import migration
from migration import errors


def _every_subclass(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _every_subclass(sub)
    return found


def test_every_error_class_is_in_errors_py_and_in_its_drawing() -> None:
    for module in pkgutil.walk_packages(migration.__path__, "migration."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    classes = _every_subclass(errors.FerryError)
    assert len(classes) > 15
    for cls in classes:
        assert cls.__module__ == "migration.errors", f"{cls.__qualname__} is defined in {cls.__module__}"
        assert re.search(rf"── {cls.__name__}\b", errors.__doc__ or ""), (
            f"{cls.__name__} is missing from the drawn tree"
        )
        assert cls.__name__ in errors.__all__
