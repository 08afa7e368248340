"""The fixes of ``tests/support/moto_server.py``: S3 ListObjectVersions (item 3).

Over HTTP against the patched server: listings keep no memory, and return what real S3 returns.
In process: the patched listing returns what moto's own code returns, call for call.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.s3 import models as s3_models

from tests.support import moto_server, servers  # patches moto in this process too

KEYS = 400  # x 2 versions x 16 KiB: moto's own listing kept about 15 MB a call
BODY = b"x" * 16 * 1024
LISTINGS = 10
GROWTH_BOUND_MB = 25  # moto's own listing: about 150 MB over the 10 listings


def _s3(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=8),
    )


def _versioned_bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_version_listings_keep_no_memory(moto_server: servers.Server, moto_url: str) -> None:
    s3 = _s3(moto_url)
    _versioned_bucket(s3, "versions-memory")

    def put_two_versions(i: int) -> None:
        for _ in range(2):
            s3.put_object(Bucket="versions-memory", Key=f"k/{i:05d}", Body=BODY)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put_two_versions, range(KEYS)))
    s3.list_object_versions(Bucket="versions-memory", Prefix="k/00000")  # the first one's imports
    before = _rss_mb(moto_server.process.pid)
    for i in range(LISTINGS):
        listing = s3.list_object_versions(Bucket="versions-memory", Prefix=f"k/{i * 7:05d}")
        assert [v["IsLatest"] for v in listing["Versions"]] == [True, False]
    grown = _rss_mb(moto_server.process.pid) - before
    assert grown < GROWTH_BOUND_MB, f"moto grew by {grown:.0f} MB over {LISTINGS} listings"


def _entries(page: dict[str, Any], kind: str) -> list[tuple[str, str, bool]]:
    return [(e["Key"], e["VersionId"], e["IsLatest"]) for e in page.get(kind, [])]


def _small_bucket(s3: Any) -> dict[str, list[str]]:
    """docs/a: 3 versions; docs/b: 1 version under a delete marker; docs/c/d, other: 1 each.
    Returns each key's version IDs, oldest first (a delete marker's included)."""
    _versioned_bucket(s3, "versions-listing")
    ids: dict[str, list[str]] = {}
    for key in ["docs/a", "docs/a", "docs/a", "docs/b", "docs/c/d", "other"]:
        put = s3.put_object(Bucket="versions-listing", Key=key, Body=key.encode())
        ids.setdefault(key, []).append(put["VersionId"])
    deleted = s3.delete_object(Bucket="versions-listing", Key="docs/b")
    assert deleted["DeleteMarker"]
    ids["docs/b"].append(deleted["VersionId"])
    return ids


def test_version_listings_as_s3_lists_them(moto_url: str) -> None:
    s3 = _s3(moto_url)
    ids = _small_bucket(s3)
    a1, a2, a3 = ids["docs/a"]
    b1, b_marker = ids["docs/b"]
    (d1,) = ids["docs/c/d"]
    (other1,) = ids["other"]

    def listing(**args: Any) -> dict[str, Any]:
        return dict(s3.list_object_versions(Bucket="versions-listing", **args))

    docs = listing(Prefix="docs/")
    assert _entries(docs, "Versions") == [
        ("docs/a", a3, True),
        ("docs/a", a2, False),
        ("docs/a", a1, False),
        ("docs/b", b1, False),
        ("docs/c/d", d1, True),
    ]
    assert _entries(docs, "DeleteMarkers") == [("docs/b", b_marker, True)]
    assert not docs["IsTruncated"]

    one_key = listing(Prefix="docs/b")
    assert _entries(one_key, "Versions") == [("docs/b", b1, False)]
    assert _entries(one_key, "DeleteMarkers") == [("docs/b", b_marker, True)]
    assert listing(Prefix="nothing/").get("Versions", []) == []

    # pages of 2, each from the previous page's key and version-id markers
    page = listing(Prefix="docs/", MaxKeys=2)
    assert _entries(page, "Versions") == [("docs/a", a3, True), ("docs/a", a2, False)]
    assert (page["IsTruncated"], page["NextKeyMarker"], page["NextVersionIdMarker"]) == (
        True,
        "docs/a",
        a2,
    )
    page = listing(Prefix="docs/", MaxKeys=2, KeyMarker="docs/a", VersionIdMarker=a2)
    assert _entries(page, "Versions") == [("docs/a", a1, False)]
    assert _entries(page, "DeleteMarkers") == [("docs/b", b_marker, True)]
    assert (page["NextKeyMarker"], page["NextVersionIdMarker"]) == ("docs/b", b_marker)
    page = listing(Prefix="docs/", MaxKeys=2, KeyMarker="docs/b", VersionIdMarker=b_marker)
    assert _entries(page, "Versions") == [("docs/b", b1, False), ("docs/c/d", d1, True)]
    assert not page["IsTruncated"]

    folders = listing(Prefix="docs/", Delimiter="/")
    assert [e[0] for e in _entries(folders, "Versions")] == ["docs/a"] * 3 + ["docs/b"]
    assert folders["CommonPrefixes"] == [{"Prefix": "docs/c/"}]

    # a page that ends on a common prefix carries a key marker only
    page = listing(Delimiter="/", MaxKeys=1)
    assert page["CommonPrefixes"] == [{"Prefix": "docs/"}]
    assert (page["IsTruncated"], page["NextKeyMarker"]) == (True, "docs/")
    assert "NextVersionIdMarker" not in page
    page = listing(Delimiter="/", MaxKeys=1, KeyMarker="docs/")
    assert _entries(page, "Versions") == [("other", other1, True)]
    assert "CommonPrefixes" not in page
    assert not page["IsTruncated"]


def _in_process_bucket() -> tuple[Any, dict[str, list[str]]]:
    """A moto backend with a versioned bucket of keys, delete markers and one timestamp tie;
    returns it and each key's version IDs."""
    backend = s3_models.S3Backend("us-east-1", "123456789012")
    backend.create_bucket("versions-moto", "us-east-1")
    backend.put_bucket_versioning("versions-moto", "Enabled")
    names = ["a", "a/1", "a/1", "a/2", "a/2/x", "a/3", "a/3", "b", "b/1", "b/1", "b/1", "c"]
    for name in names:
        backend.put_object("versions-moto", name, name.encode())
    for name in ["a/2", "b/1", "b/1", "c"]:
        backend.delete_object("versions-moto", name)
    tie = backend.get_bucket("versions-moto").keys.getlist("a/3")
    tie[1].last_modified = tie[0].last_modified  # moto's sort is stable: stored order wins
    store = backend.get_bucket("versions-moto").keys
    return backend, {name: [v.version_id for v in store.getlist(name)] for name in store}


def _shown(result: tuple[Any, ...]) -> tuple[Any, ...]:
    versions, prefixes, markers, next_key, next_version = result
    listed = [(v.name, v.version_id, v.is_latest, v.last_modified) for v in versions]
    marked = [(m.name, m.version_id, m.is_latest, m.last_modified) for m in markers]
    return listed, prefixes, marked, next_key, next_version


def _moto_own(backend: Any, **args: Any) -> tuple[Any, ...]:
    """moto's own listing, shown; the copies it made are closed and let go (moto keeps them)."""
    models = (s3_models.FakeKey, s3_models.FakeDeleteMarker)
    tracked = {model: len(model.instances_tracked) for model in models}
    shown = _shown(moto_server._original_list_object_versions(backend, "versions-moto", **args))
    for model, count in tracked.items():
        for made in model.instances_tracked[count:]:
            if isinstance(made, s3_models.FakeKey):
                made.dispose()
        del model.instances_tracked[count:]
    return shown


def _markers(version_ids: dict[str, list[str]]) -> list[tuple[str | None, str | None]]:
    """(key marker, version-id marker) pairs: none, key markers alone (existing keys or not),
    and each key's versions, a version of another key and no version at all as version markers."""
    pairs: list[tuple[str | None, str | None]] = [(None, None)]
    for key_marker in ["", "a/", "a/0", "b", "zz", *version_ids]:
        other = [i for name, ids in version_ids.items() if name != key_marker for i in ids][:1]
        own = version_ids.get(key_marker, [])
        pairs += [(key_marker, m) for m in [None, "", "no-such-version", *other, *own]]
    return pairs


def test_version_listings_match_moto_own_code() -> None:
    backend, version_ids = _in_process_bucket()
    calls = 0
    try:
        for prefix, delimiter, max_keys, (key_marker, version_id_marker) in itertools.product(
            ["", "a", "a/", "a/2", "b/", "c", "z"],
            [None, "/"],
            [1, 2, 3, 1000],
            _markers(version_ids),
        ):
            args = dict(
                delimiter=delimiter,
                key_marker=key_marker,
                max_keys=max_keys,
                prefix=prefix,
                version_id_marker=version_id_marker,
            )
            if key_marker is not None and not version_id_marker:
                continue  # moto is wrong there: test_a_key_marker_alone_lists_the_keys_after_it
            ours = _shown(backend.list_object_versions("versions-moto", **args))
            assert ours == _moto_own(backend, **args), args
            calls += 1
    finally:
        backend.reset()
    assert calls > 1000


def test_a_key_marker_alone_lists_the_keys_after_it() -> None:
    backend, version_ids = _in_process_bucket()
    try:
        for marker in ["a", "a/0", "a/1", "b", "zz"]:
            listed = backend.list_object_versions("versions-moto", key_marker=marker)
            names = [v.name for v in [*listed[0], *listed[2]]]
            expected = [n for n in version_ids if n > marker for _ in version_ids[n]]
            assert sorted(names) == sorted(expected), marker
    finally:
        backend.reset()
