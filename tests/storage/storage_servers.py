"""Object-store servers and backends for the storage tests (used by conftest.py and tests)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

#: The secret access key the S3 fixture hands out; no store byte may ever contain it.
S3_SECRET = "rf-secret-" + uuid.uuid4().hex
S3_KEY_ID = "rf-test-key-id"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class S3Server:
    port: int
    server: Any
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"client_kwargs": {"endpoint_url": self.endpoint}}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"rf-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        """(Re)start on the same port; moto keeps its state in the process, so objects survive."""
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()


@dataclass
class GCSServer:
    port: int
    server: Any

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "token": "anon"}

    def fs(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(**self.storage_options)

    def new_bucket(self) -> str:
        name = f"rf-{uuid.uuid4().hex[:12]}"
        self.fs().mkdir(name)
        return name


BACKENDS = ["file", "memory", "s3", "gs"]


@dataclass
class Backend:
    """A store location on one backend, plus how to reach it."""

    name: str
    url: str
    storage_options: dict[str, Any]

    def store(self, **kw: Any) -> Any:
        from reproflow.store import Store

        return Store(self.url, **self.storage_options, **kw)
