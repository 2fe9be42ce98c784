"""What a platform is: everything the rest of sandloop needs to know about one, in one object.

The registry reads its tasks, parameters, default task, cost hint and the names it takes; the
factory imports its adapter by name on first use (so listing models loads no model library);
credentials read its key variable. A platform module imports nothing but this and the params
base, which keeps the table free of import circles whatever an adapter imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sandloop.models.params import PlatformParams


def _takes_no_other_names(_name: str) -> bool:
    return False


@dataclass(frozen=True)
class Platform:
    name: str
    #: Each task it does, with the parameters that task accepts (``extra="forbid"`` models).
    tasks: Mapping[str, type[PlatformParams]]
    #: ``module:function`` building its adapter from ``(ModelInfo, AdapterContext)``.
    adapter: str
    #: Per task, a builder other than ``adapter`` (OpenAI's images have their own client).
    adapter_by_task: Mapping[str, str] = field(default_factory=dict)
    #: The task a ref without ``@task`` means; None when a ref must say (Replicate's models).
    default_task: str | None = None
    cost_hint: str = "free"
    #: Runs on hardware the user controls: routes try these first.
    sovereign: bool = False
    #: The environment variable its API key is read from (and the platform `sandloop keys` keeps).
    key_env: str | None = None
    #: The ``Settings`` field holding its endpoint, when it has one.
    base_url_setting: str | None = None
    #: Names outside the catalog it takes by their shape (a hub id, a folder).
    matches: Callable[[str], bool] = _takes_no_other_names
    #: How its models are named, said when a name is not found.
    naming: str = ""
    #: False for ``route:`` and ``recipe:``: refs to other refs, resolved by the registry and
    #: never entries of a models file.
    catalogued: bool = True

    def adapter_for(self, task: str) -> str:
        return self.adapter_by_task.get(task, self.adapter)
