"""``route:NAME``: an ordered list of candidate models from the models file, tried in turn."""

from __future__ import annotations

from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform


class RouteParams(PlatformParams):
    """A route takes no parameters itself: each candidate's come from the route definition."""


PLATFORM = Platform(
    name="route",
    tasks={},  # those of its candidates
    adapter="sandloop.models.router:create",
    cost_hint="that of the candidate chosen",
    catalogued=False,
)
