"""docs/semantics.md §7: apps name their procedures and refuse duplicates."""

from __future__ import annotations

import types
from datetime import timedelta

import pytest
from pydantic import BaseModel

from kitcn_temporal import App, CRPCError, public_mutation
from testapp import targets


class In(BaseModel):
    n: int


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def _proc(module: str, explicit: str | None = None):
    async def handler(ctx, input: In) -> None: ...

    builder = public_mutation.name(explicit) if explicit else public_mutation
    proc = builder.mutation(handler)
    return proc.__class__(**{**proc.__dict__, "home_module": module})


def test_discover_names_procedures_module_dot_function() -> None:
    app = App.discover("testapp")
    assert app.procedures["targets.touch"] is targets.touch
    assert app.name_of(targets.touch) == "targets.touch"


def test_app_from_modules_uses_the_last_module_component() -> None:
    app = App([targets])
    assert "targets.touch" in app.procedures


def test_duplicate_names_are_refused() -> None:
    a = _module("pkg.a", one=_proc("pkg.a", "shared.name"))
    b = _module("pkg.b", two=_proc("pkg.b", "shared.name"))
    with pytest.raises(ValueError, match=r"duplicate procedure name 'shared\.name'"):
        App([a, b])


def test_imported_procedures_are_not_registered_twice() -> None:
    home = _module("pkg.home", fn=_proc("pkg.home"))
    other = _module("pkg.other", fn=home.fn)
    app = App([home, other])
    assert list(app.procedures) == ["home.fn"]


def test_unknown_name_is_not_found() -> None:
    with pytest.raises(CRPCError, match=r"unknown procedure 'x\.y'"):
        App([targets]).get("x.y")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_queue": ""}, "task_queue"),
        ({"action_heartbeat_timeout": timedelta(0)}, "action_heartbeat_timeout"),
        ({"mutation_timeout": 5}, "mutation_timeout"),
        ({"name": ""}, "name must be a printable, non-empty string"),
        ({"name": "line\nbreak"}, "name must be a printable, non-empty string"),
        ({"sync_handler_threads": 0}, "sync_handler_threads must be a positive integer"),
        ({"sync_handler_threads": True}, "sync_handler_threads must be a positive integer"),
    ],
)
def test_bad_app_options(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        App([targets], **options)


def test_app_takes_modules() -> None:
    with pytest.raises(TypeError, match="takes modules"):
        App(["targets"])  # type: ignore[list-item]


def test_an_apps_name_defaults_to_its_task_queue() -> None:
    assert App([targets], task_queue="shop").name == "shop"
    assert App([targets], task_queue="shop", name="storefront").name == "storefront"


def test_with_options_copies_an_app_with_some_options_changed(tmp_path) -> None:
    app = App.discover("testapp", task_queue="shop", mutation_timeout=timedelta(seconds=7))
    url = f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}"
    copy = app.with_options(task_queue="shop-test", database=url)
    assert (copy.task_queue, copy.database, copy.mutation_timeout) == ("shop-test", url, timedelta(seconds=7))
    assert dict(copy.procedures) == dict(app.procedures)  # the same procedures under the same names
    assert copy.name_of(targets.touch) == "targets.touch"
    assert (app.task_queue, app.database, app.store) == ("shop", None, None)  # the original is unchanged
    assert copy.store is not None and copy.store is not app.store


def test_with_options_gives_a_copy_without_a_name_its_new_task_queue() -> None:
    assert App([targets], task_queue="shop").with_options(task_queue="shop-2").name == "shop-2"
    assert App([targets], task_queue="shop", name="store").with_options(task_queue="shop-2").name == "store"


def test_with_options_copies_with_a_store_of_its_own(tmp_path) -> None:
    app = App([targets], database=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    copy = app.with_options()
    assert copy.database == app.database and copy.store is not app.store


def test_with_options_refuses_an_unknown_option() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'queue': the options are action_heartbeat_timeout"):
        App([targets]).with_options(queue="x")
    with pytest.raises(ValueError, match="task_queue"):
        App([targets]).with_options(task_queue="")
