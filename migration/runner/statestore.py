"""The run's state where every runner reaches it: the stack's state bucket (``ferry run --runner ecs``).

The caller and its task take turns with the state (the task writes it while it runs, the caller while the task
waits for it or is gone): each writes its local copy and puts it in the bucket, and reads the bucket's before it
reads its own. So a task inside the VPC and a caller on a laptop see one state, and a run started on a laptop
goes on from CI (whose checkout has no state of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migration.files import replace_file
from migration.runner.aws import aws_client, aws_errors, error_code

__all__ = ["STATE_BUCKET_ENV", "StateMirror"]

#: The task's environment variable naming the state bucket (the stack's task definition sets it).
STATE_BUCKET_ENV = "FERRY_STATE_BUCKET"


@dataclass(frozen=True)
class StateMirror:
    """The run's files of one stack in its state bucket, under ``runs/<stack>/``.

    :param endpoint_url: instead of S3's own endpoint (a moto server, in tests).
    """

    bucket: str
    stack: str
    region: str
    endpoint_url: str | None = None

    def _key(self, path: Path) -> str:
        return f"runs/{self.stack}/{path.name}"

    def push(self, path: Path) -> None:
        """Put the local file *path* in the bucket (or remove it there, once gone here)."""
        s3 = aws_client("s3", self.region, self.endpoint_url)
        with aws_errors(f"S3 state of stack {self.stack} in bucket {self.bucket}"):
            if path.exists():
                s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=path.read_bytes())
            else:
                s3.delete_object(Bucket=self.bucket, Key=self._key(path))

    def pull(self, path: Path) -> bool:
        """Replace the local file *path* with the bucket's copy; ``False`` (and *path* removed) when the bucket
        has none."""
        s3 = aws_client("s3", self.region, self.endpoint_url)
        with aws_errors(f"S3 state of stack {self.stack} in bucket {self.bucket}"):
            try:
                body = s3.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
            except Exception as exc:
                if error_code(exc) in ("NoSuchKey", "404"):
                    path.unlink(missing_ok=True)
                    return False
                raise
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, body.decode(), durable=False)
        return True
