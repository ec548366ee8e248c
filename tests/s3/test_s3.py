"""ferry s3 sync/verify against moto's S3 server over HTTP: two servers stand for two accounts."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from migration.rehearse.motoserver import MotoServer, running_moto
from tests.helpers import Run, assert_one_line_error, ferry
from tests.s3.conftest import env, s3

KEYS = {
    "plain.txt": b"hello",
    "with space/and unicode \u00e9\u00e8 \u2713.txt": b"unicode",
    "plus+sign%percent.txt": b"odd characters",
    "a/b/c/d/e/f/g/h/i/j/k/l/deep.bin": b"\x00\x01" * 100,
    "empty": b"",
}


def fill(client: Any, bucket: str, prefix: str = "") -> None:
    for key, body in KEYS.items():
        client.put_object(Bucket=bucket, Key=prefix + key, Body=body)
    client.put_object(
        Bucket=bucket, Key=prefix + "styled.css.gz", Body=b"body{}", ContentType="text/css", ContentEncoding="gzip",
        CacheControl="max-age=60", ContentDisposition='attachment; filename="s.css"', Metadata={"owner": "web"},
        Tagging="team=web&tier=static",
    )  # fmt: skip
    upload = client.create_multipart_upload(Bucket=bucket, Key=prefix + "big/multipart.bin", ContentType="video/mp4")
    parts = []
    for number, fill_byte in enumerate((b"a", b"b", b"c"), start=1):
        body = fill_byte * (5 * 1024 * 1024 if number < 3 else 1234)
        reply = client.upload_part(Bucket=bucket, Key=prefix + "big/multipart.bin", UploadId=upload["UploadId"],
                                   PartNumber=number, Body=body)  # fmt: skip
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=prefix + "big/multipart.bin", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})  # fmt: skip


def sync(moto_pair: tuple[MotoServer, MotoServer], src: str, dst: str, *args: str, same: bool = False) -> Run:
    return ferry("s3", "sync", src, dst, "--json", *args, env=env(moto_pair, same))


def listing(client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[int, str]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix):]: (o["Size"], o["ETag"]) for p in pages for o in p.get("Contents", [])}  # fmt: skip


def test_sync_across_accounts_keeps_everything(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    fill(source, src_bucket, "app/uploads/")
    run = sync(moto_pair, f"s3://{src_bucket}/app/uploads/", f"s3://{dst_bucket}/media/")
    assert run.code == 0, run.stderr
    assert run.json["copied"] == 7 and run.json["server_side"] is False
    assert listing(source, src_bucket, "app/uploads/") == listing(target, dst_bucket, "media/")
    head = target.head_object(Bucket=dst_bucket, Key="media/styled.css.gz")
    assert (head["ContentType"], head["ContentEncoding"], head["CacheControl"]) == ("text/css", "gzip", "max-age=60")
    assert head["ContentDisposition"] == 'attachment; filename="s.css"' and head["Metadata"] == {"owner": "web"}
    tags = target.get_object_tagging(Bucket=dst_bucket, Key="media/styled.css.gz")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "web"), ("tier", "static")]
    assert target.head_object(Bucket=dst_bucket, Key="media/big/multipart.bin")["ContentType"] == "video/mp4"
    assert target.get_object(Bucket=dst_bucket, Key="media/empty")["Body"].read() == b""
    for secret in ("source-secret-value-1", "target-secret-value-2"):
        assert secret not in run.output

    again = sync(moto_pair, f"s3://{src_bucket}/app/uploads/", f"s3://{dst_bucket}/media/")
    assert again.code == 0 and again.json["copied"] == 0
    verify = ferry("s3", "verify", f"s3://{src_bucket}/app/uploads/", f"s3://{dst_bucket}/media/", "--json",
                   env=env(moto_pair))  # fmt: skip
    assert verify.code == 0 and verify.json["checked"]["objects"] == 7 and verify.json["identical"]


def test_same_size_change_is_noticed_and_resume_copies_only_what_is_missing(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    fill(source, src_bucket)
    # an interrupted earlier run: part of the objects already there
    assert sync(moto_pair, f"s3://{src_bucket}/a/", f"s3://{dst_bucket}/a/").json["copied"] == 1
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}")
    assert run.json["copied"] == 6
    source.put_object(Bucket=src_bucket, Key="plain.txt", Body=b"HELLO")  # same size, other bytes
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}")
    assert run.json["copied"] == 1 and target.get_object(Bucket=dst_bucket, Key="plain.txt")["Body"].read() == b"HELLO"


def test_delete_is_opt_in_and_dry_run_lists_first(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    source.put_object(Bucket=src_bucket, Key="keep", Body=b"1")
    target.put_object(Bucket=dst_bucket, Key="stale", Body=b"old")
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}")
    assert run.json["deleted"] == 0 and "stale" in listing(target, dst_bucket)
    dry = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", "--delete", "--dry-run")
    assert dry.json["planned"] == [{"action": "delete", "key": "stale"}] and "stale" in listing(target, dst_bucket)
    verify = ferry("s3", "verify", f"s3://{src_bucket}", f"s3://{dst_bucket}", env=env(moto_pair))
    assert verify.code == 1 and "extra on target" in verify.stdout
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", "--delete")
    assert run.json["deleted"] == 1 and set(listing(target, dst_bucket)) == {"keep"}


def test_server_side_copy_with_one_identity(moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> None:
    src_bucket, _ = buckets
    source = s3(moto_pair[0])
    dst_bucket = src_bucket + "-renamed"
    source.create_bucket(Bucket=dst_bucket)
    fill(source, src_bucket)
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", same=True)
    assert run.code == 0, run.stderr
    assert run.json["server_side"] is True and run.json["copied"] == 7
    assert listing(source, src_bucket) == listing(source, dst_bucket)  # multipart ETag kept: same parts
    tags = source.get_object_tagging(Bucket=dst_bucket, Key="styled.css.gz")["TagSet"]
    assert len(tags) == 2
    assert sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", same=True).json["copied"] == 0


def test_large_single_part_objects_move_in_parts_and_are_recognised(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    source.put_object(Bucket=src_bucket, Key="video.bin", Body=os.urandom(11 * 1024 * 1024))
    run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", "--multipart-threshold", "5MB")
    assert run.json["copied"] == 1
    assert "-" in listing(target, dst_bucket)["video.bin"][1]  # now multipart: its ETag differs
    again = sync(moto_pair, f"s3://{src_bucket}", f"s3://{dst_bucket}", "--multipart-threshold", "5MB")
    assert again.json["copied"] == 0
    assert ferry("s3", "verify", f"s3://{src_bucket}", f"s3://{dst_bucket}", env=env(moto_pair)).code == 0
    assert target.get_object(Bucket=dst_bucket, Key="video.bin")["Body"].read() == source.get_object(
        Bucket=src_bucket, Key="video.bin")["Body"].read()  # fmt: skip


def test_missing_bucket_names_side_and_bucket_and_deletes_nothing(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    s3(moto_pair[1]).put_object(Bucket=dst_bucket, Key="precious", Body=b"x")
    run = sync(moto_pair, "s3://no-such-bucket-here", f"s3://{dst_bucket}", "--delete")
    assert_one_line_error(run, "source:", "no-such-bucket-here", "does not exist")
    assert "precious" in listing(s3(moto_pair[1]), dst_bucket)
    run = sync(moto_pair, f"s3://{src_bucket}", "s3://missing-target-bucket")
    assert_one_line_error(run, "target:", "missing-target-bucket")


def test_access_denied_and_bad_endpoint(moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> None:
    src_bucket, dst_bucket = buckets
    with running_moto(enforce_auth=True) as locked:
        environment = {**env(moto_pair), "FERRY_S3_TARGET_ENDPOINT_URL": locked.endpoint}
        run = ferry("s3", "sync", f"s3://{src_bucket}", "s3://locked-bucket", env=environment)
    assert_one_line_error(run, "target:", "access denied to bucket locked-bucket")
    assert "target-secret-value-2" not in run.output
    environment = {**env(moto_pair), "FERRY_S3_SOURCE_ENDPOINT_URL": "http://127.0.0.1:1"}
    run = ferry("s3", "sync", f"s3://{src_bucket}", f"s3://{dst_bucket}", env=environment)
    assert_one_line_error(run, "source:", "cannot reach", src_bucket)


def test_not_an_s3_url(moto_pair: tuple[MotoServer, MotoServer]) -> None:
    run = ferry("s3", "sync", "gs://bucket", "s3://x", env=env(moto_pair))
    assert_one_line_error(run, "source:", "expected s3://BUCKET")


def test_verify_compares_bytes_when_part_layouts_differ(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    """Another tool may have uploaded the copy in parts: ETags differ, the bytes decide."""
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    body = os.urandom(6 * 1024 * 1024)
    source.put_object(Bucket=src_bucket, Key="clip.mp4", Body=body)
    for key, content in (("clip.mp4", body), ("other.mp4", body)):
        upload = target.create_multipart_upload(Bucket=dst_bucket, Key=key)
        part = target.upload_part(Bucket=dst_bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=content)
        target.complete_multipart_upload(Bucket=dst_bucket, Key=key, UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})  # fmt: skip
    target.delete_object(Bucket=dst_bucket, Key="other.mp4")
    run = ferry("s3", "verify", f"s3://{src_bucket}", f"s3://{dst_bucket}", "--json", env=env(moto_pair))
    assert run.code == 0, run.output
    changed = bytearray(body)
    changed[100] ^= 0xFF
    upload = target.create_multipart_upload(Bucket=dst_bucket, Key="clip.mp4")
    part = target.upload_part(Bucket=dst_bucket, Key="clip.mp4", UploadId=upload["UploadId"], PartNumber=1,
                              Body=bytes(changed))  # fmt: skip
    target.complete_multipart_upload(Bucket=dst_bucket, Key="clip.mp4", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})  # fmt: skip
    run = ferry("s3", "verify", f"s3://{src_bucket}", f"s3://{dst_bucket}", "--json", env=env(moto_pair))
    assert run.code == 1 and [d["kind"] for d in run.json["differences"]] == ["checksum"]


def test_the_fast_listing_parser_reads_pages_as_botocore_does(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    from migration.s3.client import S3Side

    src, _ = buckets
    fill(s3(moto_pair[0]), src)
    fast = S3Side("source", None, "us-east-1", moto_pair[0].endpoint, "test", "test").client()
    stock = s3(moto_pair[0])
    for arguments in ({}, {"MaxKeys": 3}, {"Delimiter": "/"}, {"Prefix": "with space/"}, {"StartAfter": "empty"}):
        ours, theirs = fast.list_objects_v2(Bucket=src, **arguments), stock.list_objects_v2(Bucket=src, **arguments)
        for reply in (ours, theirs):
            reply.pop("ResponseMetadata")
            for item in reply.get("Contents", []):
                item["LastModified"] = str(item["LastModified"])[:10]  # botocore's stock parser makes a datetime
        assert ours == theirs, arguments
    assert set(KEYS) <= {item["Key"] for item in fast.list_objects_v2(Bucket=src)["Contents"]}
    with pytest.raises(Exception, match="NoSuchBucket"):
        fast.list_objects_v2(Bucket="no-such-bucket-here")


def test_acl_and_storage_class_apply_to_every_copy(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    src_bucket, dst_bucket = buckets
    source, target = s3(moto_pair[0]), s3(moto_pair[1])
    fill(source, src_bucket)
    for same, bucket in ((False, dst_bucket), (True, f"{dst_bucket}-same")):
        (source if same else target).create_bucket(Bucket=bucket)
        run = sync(moto_pair, f"s3://{src_bucket}", f"s3://{bucket}", "--storage-class", "STANDARD_IA",
                   "--acl", "public-read", same=same)  # fmt: skip
        assert run.code == 0, run.output
        client = source if same else target
        for key in ("plain.txt", "big/multipart.bin", "empty"):
            assert client.head_object(Bucket=bucket, Key=key)["StorageClass"] == "STANDARD_IA", (same, key)
            grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
            assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants)


class _WrongRegion(BaseHTTPRequestHandler):
    """Answers like S3 does for a bucket in another region than the request was signed for."""

    def _redirect(self) -> None:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are '
            b"attempting to access must be addressed using the specified endpoint.</Message>"
            b"<Endpoint>s3.eu-west-1.amazonaws.com</Endpoint><Bucket>eu-bucket</Bucket></Error>"
        )
        self.send_response(301)
        self.send_header("x-amz-bucket-region", "eu-west-1")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _redirect

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_wrong_region_names_the_side_the_bucket_and_its_region(moto_pair: tuple[MotoServer, MotoServer]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WrongRegion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environment = {**env(moto_pair), "FERRY_S3_SOURCE_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}"}
        run = ferry("s3", "sync", "s3://eu-bucket", "s3://whatever", env=environment)
    finally:
        server.shutdown()
    assert_one_line_error(run, "source:", "bucket eu-bucket is not in the region asked for; it is in eu-west-1")


def test_progress_knows_the_total_once_the_listings_are_read(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    import io

    from migration.progress import PlainProgress
    from migration.s3 import S3Side, SyncOptions, sync_buckets

    src_bucket, dst_bucket = buckets
    source = s3(moto_pair[0])
    for n in range(40):
        source.put_object(Bucket=src_bucket, Key=f"f{n:02d}", Body=b"x" * n)
    lines = io.StringIO()
    options = SyncOptions(
        source_url=f"s3://{src_bucket}",
        target_url=f"s3://{dst_bucket}",
        source=S3Side("source", None, "us-east-1", moto_pair[0].endpoint, "a", "b"),
        target=S3Side("target", None, "us-east-1", moto_pair[1].endpoint, "c", "d"),
        jobs=2,
    )
    result = sync_buckets(options, PlainProgress(stream=lines, interval=0.0, unit="objects"))
    assert result.copied == 40
    with_eta = [line for line in lines.getvalue().splitlines() if "ETA" in line]
    assert with_eta and all("of ~40" in line for line in with_eta)


def test_a_wait_for_a_listing_page_ends_when_the_consumer_gives_up() -> None:
    """A hold inside the freeze must not wait for a listing page (seconds on a big bucket) to arrive."""
    import threading
    import time

    from migration.s3.listing import ahead

    release = threading.Event()

    def slow_pages() -> Iterator[int]:
        yield 1
        release.wait(10)  # a page that takes long to come
        yield 2

    held = threading.Event()
    started = time.monotonic()
    seen = []
    for item in ahead(slow_pages(), 4, "test-ahead", give_up=held.is_set):
        seen.append(item)
        threading.Timer(0.2, held.set).start()
    assert seen == [1] and time.monotonic() - started < 2
    release.set()
    assert list(ahead(iter([1, 2, 3]), 1, "test-ahead", give_up=lambda: False)) == [1, 2, 3]
