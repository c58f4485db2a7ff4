"""Where a stream comes from: one class per entity of the catalog (`catalog.json`, generated
from Exact's reference), on the generic stream of its API kind."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tap_exactonline.catalog import EntitySpec
from tap_exactonline.client import ExactStream
from tap_exactonline.odata_streams import ChildReadStream, CurrentUserStream, ODataStream
from tap_exactonline.sync_streams import DELETED_PATH, DeletedStream, SyncStream

STREAM_KINDS: dict[str, type[ExactStream]] = {
    "sync": SyncStream,
    "bulk": ODataStream,
    "standard": ODataStream,
    "read": ODataStream,
    "beta": ODataStream,
    "system": ODataStream,
    "current": CurrentUserStream,
}


def stream_classes(specs: Iterable[EntitySpec]) -> list[type[ExactStream]]:
    """A class per entity (the SDK links child streams to parents by class)."""
    classes: dict[str, type[ExactStream]] = {}
    # Parents first: a child's class names its parent's. (The deletion log's place among the
    # streams is decided by TapExactOnline.streams.)
    specs = sorted(specs, key=lambda spec: spec.child_of is not None)
    for spec in specs:
        attributes: dict[str, Any] = {"spec": spec, "__module__": __name__}
        base = STREAM_KINDS[spec.api]
        if spec.child_of is not None:
            base = ChildReadStream
            attributes["parent_stream_type"] = classes[spec.child_of.parent]
        elif spec.path == DELETED_PATH:
            base = DeletedStream
        class_name = "".join(part.title() for part in spec.name.split("_")) + "Stream"
        classes[spec.name] = type(class_name, (base,), attributes)
    return list(classes.values())
