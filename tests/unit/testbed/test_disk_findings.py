"""How the host reads fsck.fat's findings on a testbed disk (winarm_testbed.disk_image), without a disk."""

from __future__ import annotations

import pytest

from winarm_testbed.disk_image import classify, findings

KINDS = {
    "dirty bit set (not properly unmounted)": "dirty-bit",
    "Dirty bit is set. Fs was not properly unmounted": "dirty-bit",
    "/WINDOWS/winarm-write-load/f12.txt": "path",
    "Reclaimed 3 unused clusters (12288 bytes) in 1 chain.": "lost-clusters",
    "Free cluster summary wrong (1000 vs. really 997)": "lost-clusters",
    "FATs differ but appear to be intact.": "fat-copies-differ",
    "File size is 4096 bytes, cluster chain length is 0 bytes.": "size-vs-chain",
    "Truncating file to 0 bytes.": "size-vs-chain",
    "Contains a free cluster (5). Assuming EOF.": "size-vs-chain",
    "Expected a valid '.' entry in the first slot, found free entry.": "dir-unwritten",
    "/a and /b share clusters.": "other",
    "Boot sector contents differ from its backup": "other",
}


@pytest.mark.parametrize("finding", sorted(KINDS))
def test_each_finding_has_its_kind(finding: str) -> None:
    assert classify(finding) == KINDS[finding]


def test_findings_drop_the_banner_counts_and_notes() -> None:
    output = ("fsck.fat 4.2 (2021-01-31)\nDirty bit is set. Fs was not properly unmounted.\n"
              " Automatically removing dirty bit.\n\n  Reclaimed 1 unused cluster (4096 bytes) in 1 chain.  \n"
              "*** Filesystem was changed ***\nWriting changes.\n/dev/vda2: 3 files, 10/100 clusters\n")
    assert findings(output) == ["dirty bit set (not properly unmounted)",
                                "Reclaimed 1 unused cluster (4096 bytes) in 1 chain."]
