"""The one way hseg-mm turns a config's `type` into a class."""
import inspect
from typing import Any, Mapping, Optional

__all__ = ['config_class']


def config_class(cfg: Any, registry) -> Optional[type]:
    """The class a config dict would build: its `type` if that is a class, else the
    class registered under that name in `registry` (scopes as mmengine resolves them).

    Returns None for a non-mapping, a missing or non-string `type`, or a name the
    registry does not know; callers that need the class raise with their own context.
    """
    if not isinstance(cfg, Mapping):
        return None
    kind = cfg.get('type')
    if inspect.isclass(kind):
        return kind
    if not isinstance(kind, str):
        return None
    try:
        return registry.get(kind)
    except KeyError:  # an unknown scope prefix ('foo.Bar')
        return None
