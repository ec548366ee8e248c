"""Benchmark: ferry s3 sync against aws s3 sync and s5cmd sync on a local S3 server (moto).

Puts small objects and a few 8 MiB objects (with content types, user metadata and tags)
in a source bucket, then per round syncs them into a fresh bucket with each tool and
syncs again with nothing changed. Every result is checked with ``ferry s3 verify``
(count, sizes, ETags); metadata and tags are checked on every object and reported per
tool. All tools use one endpoint and one identity, as aws and s5cmd require. Key names
avoid spaces here: s5cmd's server-side copy of such keys fails against moto (NoSuchKey);
ferry's own tests cover spaces, unicode, ``+`` and ``%``.

    .venv/bin/python bench/s3_sync.py --small 2000 --large 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timings, machine, timed  # noqa: E402
from migration.rehearse.motoserver import MotoServer, running_moto  # noqa: E402

BIN = Path(sys.executable).parent


def client(server: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench-secret")  # fmt: skip


def generate(server: MotoServer, bucket: str, small: int, large: int) -> None:
    s3 = client(server)
    s3.create_bucket(Bucket=bucket)

    def put(i: int) -> None:
        if i < small:
            s3.put_object(Bucket=bucket, Key=f"uploads/{i % 50}/file-{i}.txt", Body=os.urandom(1024 + i % 4096),
                          ContentType="text/plain", Metadata={"n": str(i)}, Tagging=f"kind=small&n={i % 7}")  # fmt: skip
        else:
            s3.put_object(Bucket=bucket, Key=f"videos/clip-{i}.mp4", Body=os.urandom(8 * 1024 * 1024),
                          ContentType="video/mp4", Metadata={"n": str(i)}, Tagging="kind=large")  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(small + large)))


def env() -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "FERRY_S3_SOURCE_ACCESS_KEY_ID": "bench",
            "FERRY_S3_SOURCE_SECRET_ACCESS_KEY": "bench-secret", "FERRY_S3_TARGET_ACCESS_KEY_ID": "bench",
            "FERRY_S3_TARGET_SECRET_ACCESS_KEY": "bench-secret"}  # fmt: skip


def run_tool(tool: str, server: MotoServer, src: str, dst: str) -> float:
    if tool == "ferry s3 sync":
        return timed([str(BIN / "ferry"), "s3", "sync", f"s3://{src}", f"s3://{dst}",
                      "--source-endpoint-url", server.endpoint, "--target-endpoint-url", server.endpoint,
                      "--source-region", "us-east-1", "--target-region", "us-east-1"], env=env())  # fmt: skip
    if tool == "aws s3 sync":
        return timed([str(BIN / "aws"), "--endpoint-url", server.endpoint, "s3", "sync", f"s3://{src}",
                      f"s3://{dst}", "--only-show-errors"], env=env())  # fmt: skip
    if tool == "s5cmd sync":
        s5cmd = shutil.which("s5cmd") or str(BIN / "s5cmd")
        return timed([s5cmd, "--endpoint-url", server.endpoint, "sync", f"s3://{src}/*", f"s3://{dst}/"], env=env())
    raise ValueError(tool)


def verify(server: MotoServer, src: str, dst: str) -> str:
    """Contents must match; returns what happened to metadata and tags."""
    proc = subprocess.run(
        [str(BIN / "ferry"), "s3", "verify", f"s3://{src}", f"s3://{dst}", "--source-endpoint-url", server.endpoint,
         "--target-endpoint-url", server.endpoint, "--json"],
        env=env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"verify failed: {proc.stdout[-1500:]} {proc.stderr[-500:]}")
    s3 = client(server)
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=src) for o in p.get("Contents", [])]

    def same(key: str) -> tuple[bool, bool]:
        a, b = s3.head_object(Bucket=src, Key=key), s3.head_object(Bucket=dst, Key=key)
        meta = (a.get("ContentType"), a.get("Metadata")) == (b.get("ContentType"), b.get("Metadata"))
        tags = (
            s3.get_object_tagging(Bucket=src, Key=key)["TagSet"] == s3.get_object_tagging(Bucket=dst, Key=key)["TagSet"]
        )
        return meta, tags

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(same, keys))
    meta = sum(m for m, _ in results)
    tags = sum(t for _, t in results)
    return f"metadata kept {meta}/{len(keys)}, tags kept {tags}/{len(keys)}"


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    full, rerun = Timings("ferry s3 sync"), Timings("ferry s3 sync")
    notes: dict[str, str] = {}
    tools = ["ferry s3 sync", "aws s3 sync", "s5cmd sync"]
    with running_moto() as server:
        generate(server, "bench-source", args.small, args.large)
        print(f"dataset: {args.small} small objects (1-5 KiB), {args.large} of 8 MiB, on moto", flush=True)
        n = 0
        for round_no in range(args.rounds):
            for tool in tools[round_no % 3 :] + tools[: round_no % 3]:
                n += 1
                dst = f"bench-target-{n}"
                client(server).create_bucket(Bucket=dst)
                seconds = run_tool(tool, server, "bench-source", dst)
                notes[tool] = verify(server, "bench-source", dst)
                again = run_tool(tool, server, "bench-source", dst)
                full.add(tool, seconds)
                rerun.add(tool, again)
                print(f"round {round_no + 1}: {tool:<14} full {seconds:6.1f} s, unchanged re-run {again:5.1f} s "
                      f"({notes[tool]})", flush=True)  # fmt: skip
    print("\nfull copy\n" + full.table())
    print("\nunchanged re-run\n" + rerun.table())
    print()
    for tool, note in notes.items():
        print(f"{tool}: {note}")


if __name__ == "__main__":
    main()
