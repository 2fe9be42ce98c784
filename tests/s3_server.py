"""An S3-compatible server on 127.0.0.1 (moto's server mode) for remote homes.

moto enforces conditional puts (If-None-Match, If-Match), which LanceDB's commits and the
thread leases rely on. One server serves a test session; each test gets its own bucket. A
second kind, in its own process, checks credentials (moto skips that unless asked).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.prefect_server import free_port

REGION = "us-east-1"


@dataclass
class S3Server:
    port: int
    key_id: str = "sandloop-test-key"
    secret: str = "sandloop-test-secret-5f3a"
    thread: ThreadedMotoServer | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard variables a user sets for an S3-compatible endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": REGION,
        }

    def client(self, service: str = "s3") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name=REGION,
        )

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"sandloop-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def start(port: int | None = None) -> S3Server:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = port or free_port()
    thread = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    thread.start()
    return S3Server(port, thread=thread)


def start_process(port: int | None = None, *, check_credentials: bool = False) -> S3Server:
    """moto_server in its own process (it can be stopped and started again on its port). With
    ``check_credentials`` the first three actions create an IAM user with an S3 policy and its
    key, and every request after them must be signed by a key moto knows."""
    port = port or free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if check_credentials else {})}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = S3Server(port, process=process)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                server.stop()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)
    if check_credentials:
        iam = server.client("iam")
        iam.create_user(UserName="sandloop")
        policy = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        iam.put_user_policy(
            UserName="sandloop",
            PolicyName="s3",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
        )
        key = iam.create_access_key(UserName="sandloop")["AccessKey"]
        server.key_id, server.secret = key["AccessKeyId"], key["SecretAccessKey"]
    return server
