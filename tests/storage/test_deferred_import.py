"""lance-namespace's REST client is deferred (about a second of every command's start), and the
store works without it, while a reader of the package still gets all of it. In a fresh
interpreter, since the test session has imported everything already."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, tempfile
from sandloop.storage.store import AkashicStore
store = AkashicStore.open(tempfile.mkdtemp() + "/home")
store.runs()
print("api" if "lance_namespace_urllib3_client.api.table_api" in sys.modules else "no api")
import lance_namespace_urllib3_client as client
print(client.TableApi.__name__, "lance_namespace_urllib3_client.api.table_api" in sys.modules)
"""


def test_the_rest_client_loads_only_when_read() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["no api", "TableApi True"]
