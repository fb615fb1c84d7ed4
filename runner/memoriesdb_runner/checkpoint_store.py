"""Where signed checkpoints are kept, outside the database: append-only stores of small files.

A store holds one file per checkpoint, named by the anchoring machine's clock (UTC, to the
microsecond) and a random suffix, so names sort by time; a name is never written twice. Two
kinds: a directory (the default) and an S3-compatible bucket (`s3://bucket/prefix`, boto3).
Neither makes a deletion impossible for whoever may write there: that is what keeping the store
away from the database's administrators (another machine, another account, S3 Object Lock) is for."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from .errors import ConfigurationError

SUFFIX = ".json"


def new_name(now: dt.datetime | None = None) -> str:
    """20261130T063000.123456Z-1a2b3c4d.json: sortable by time, unique in practice."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}{SUFFIX}"


def _variant(name: str, n: int) -> str:
    return name if n == 0 else f"{name.removesuffix(SUFFIX)}-{n}{SUFFIX}"


class CheckpointStore(Protocol):
    location: str

    def put(self, name: str, data: bytes) -> str:
        """Store data under name (or, if name is taken, a variant of it); never replaces a stored
        file. Returns where it went."""

    def names(self) -> list[str]:
        """The stored checkpoints' names, oldest first."""

    def get(self, name: str) -> bytes: ...


class DirectoryStore:
    """One file per checkpoint in a directory: written to a temporary file, fsynced, linked to its
    name (link(2) fails if the name exists, so a file is never replaced, even by a concurrent
    anchor), the temporary name removed and the directory fsynced."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.location = str(self.path)

    def put(self, name: str, data: bytes) -> str:
        _check_name(name)
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            for n in range(1000):
                target = self.path / _variant(name, n)
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    continue
                break
            else:
                raise FileExistsError(f"{self.path}: no free name for {name}")
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.path)
        return str(target)

    def names(self) -> list[str]:
        if not self.path.is_dir():
            raise ConfigurationError(f"checkpoint directory {self.path} does not exist")
        return sorted(p.name for p in self.path.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def get(self, name: str) -> bytes:
        _check_name(name)
        return (self.path / name).read_bytes()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str) -> None:
    if "/" in name or name.startswith(".") or not name.endswith(SUFFIX):
        raise ValueError(f"not a checkpoint file name: {name!r}")


class S3Store:
    """One object per checkpoint under s3://bucket/prefix/. Written with If-None-Match: * (a
    conditional write: the server refuses to replace an existing key; AWS S3 and recent MinIO,
    Ceph, R2 honour it). Credentials and region come from boto3's usual chain (AWS_* variables,
    ~/.aws); endpoint_url names an S3-compatible server other than AWS."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self.prefix}"
        if client is None:
            try:
                import boto3
            except ImportError as exc:
                raise ConfigurationError("an s3:// checkpoint store needs boto3: pip install 'memoriesdb-runner[s3]'") from exc
            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client

    def put(self, name: str, data: bytes) -> str:
        from botocore.exceptions import ClientError

        _check_name(name)
        for n in range(100):
            key = self.prefix + _variant(name, n)
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json", IfNoneMatch="*")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    continue
                raise
            return f"s3://{self.bucket}/{key}"
        raise FileExistsError(f"{self.location}: no free name for {name}")

    def names(self) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(self.prefix) :]
                if "/" not in rest and rest.endswith(SUFFIX) and not rest.startswith("."):
                    found.append(rest)
        return sorted(found)

    def get(self, name: str) -> bytes:
        _check_name(name)
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()


_S3 = re.compile(r"^s3://([^/]+)/?(.*)$")


def open_store(location: str | Path, *, s3_endpoint_url: str | None = None) -> CheckpointStore:
    """A store from its location: s3://bucket[/prefix] or a directory path."""
    text = str(location)
    m = _S3.match(text)
    if m:
        return S3Store(m.group(1), m.group(2), endpoint_url=s3_endpoint_url)
    if "://" in text:
        raise ConfigurationError(f"checkpoint store {text!r}: a directory or s3://bucket/prefix")
    return DirectoryStore(Path(text).expanduser())
