"""The HTTP API's read path against `sandloop.api` called directly, in one run.

A thread of N recorded steps (bare LanceDB adds). Direct: ``api.run_steps(thread)``. Over HTTP:
``GET /v1/runs/{thread}/steps`` on uvicorn at 127.0.0.1 through httpx, in one page and in
pages of 1,000. Then requests/s of the small read routes from 4 client threads.

    python benchmarks/bench_api.py [--n 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.web.serving import serving

import _common  # noqa: F401 - quiet Prefect settings
import bench_export


def best(fn: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    import httpx

    from sandloop import api
    from sandloop.web.app import create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sandloop-bench-api-")) / "home"
    bench_export.build_store(home, args.n)
    thread = bench_export.THREAD
    token, _ = api.create_token("read", "bench", home)
    headers = {"Authorization": f"Bearer {token}"}
    with (
        serving(create_app(home)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=120) as http,
    ):

        def one_page() -> None:
            got = http.get(f"/v1/runs/{thread}/steps", params={"limit": 10_000}).json()
            assert len(got["steps"]) == min(args.n, 10_000)

        def paged() -> None:
            after, total = -1, 0
            while True:
                got = http.get(f"/v1/runs/{thread}/steps", params={"after": after}).json()
                total += len(got["steps"])
                if got["next_cursor"] is None:
                    break
                after = got["next_cursor"]
            assert total == args.n

        direct = best(lambda: api.run_steps(thread, home))
        whole = best(one_page)
        pages = best(paged, 3)

        def small_reads(count: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as own:
                for i in range(count):
                    own.get(("/v1/recipes", "/v1/snapshots", f"/v1/runs/{thread}")[i % 3])

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(small_reads, [100] * 4))
        rps = 400 / (time.perf_counter() - started)
    print(f"{args.n} steps of one thread, best of 5, {time.strftime('%Y-%m-%d')}")
    print(f"api.run_steps (direct):              {direct * 1000:8.1f} ms")
    print(f"GET …/steps, one page over HTTP:     {whole * 1000:8.1f} ms | {direct / whole:.2f}x")
    print(f"GET …/steps, pages of 1,000:         {pages * 1000:8.1f} ms | {direct / pages:.2f}x")
    print(f"small read routes, 4 clients: {rps:.0f} requests/s")


if __name__ == "__main__":
    main()
