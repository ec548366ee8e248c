"""Change capture under chaos, short: random writers, the follower killed and started again, the fence, an exact compare.

The long version is ``bench/capture_chaos.py`` (its docstring says what a seed does; the harness
itself is the package ``bench/chaos/``). Here two seeds, a few seconds of writes each, on this
worker's clusters. Nothing waits on a clock: the follower is killed only once its status file
shows it applied something, started again and waited for until its status file says it is live,
and the freeze's steps answer when they are done; a slow machine makes a seed longer, never
different. The comparator is the harness's own (an md5 of every table's rows in one order, counts,
every sequence's state, every large object), not ferry's verify, and after
``ferry pg capture remove`` the source's catalog must be what it was before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos.outcome import Options
from bench.chaos.report import report
from bench.chaos.seed import run_seed
from migration.rehearse.pgcluster import Cluster

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [101, 404])
def test_the_target_equals_the_source_after_chaos_kills_the_fence_and_the_drain(
    seed: int, source_cluster: Cluster, target_cluster: Cluster, tmp_path: Path
) -> None:
    # Small batches after each restart: values handed between rows then cross batch boundaries often.
    options = Options(seconds=8, kills=3, scale=0.3, batches=(50, 500, 5000), work=tmp_path, verbose=False)
    outcome = run_seed(seed, options, source_cluster.url(), target_cluster.url())
    assert outcome.acked > 50, report(outcome)  # the writers did write
    assert outcome.ok, report(outcome)
    assert outcome.kills == options.kills, report(outcome)  # and the follower was killed as often as asked
