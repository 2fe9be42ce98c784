"""Where `sandloop api` listens (issue 37, item 9): beyond loopback, other machines reach the
API and its gallery, and the command warns before it serves."""

from __future__ import annotations

import pytest

from sandloop.web.listen import beyond_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_not_warned_about(host: str) -> None:
    assert not beyond_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "wall.example"])
def test_any_other_address_or_a_name_is_beyond_loopback(host: str) -> None:
    assert beyond_loopback(host)
