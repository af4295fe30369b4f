"""Ecosystem round trips through ``aiobucket://``: run from ``.venv-eco`` by
tests/test_fsspec_ecosystem.py, once per bucket named on the command line.

Each round trip writes through one library and reads back through the same or
another, comparing values; it prints ``ok <name>`` when it passed and stops
with a traceback otherwise. Where the buckets live is AIOBUCKET_CONFIG (a TOML
file): the test points one bucket at local files and one at SeaweedFS. Nothing
here imports aiobucket before the libraries do: the ``fsspec.specs`` entry point
is what resolves ``aiobucket://``.
"""

from __future__ import annotations

import sys

import fsspec
import numpy as np
import pandas as pd


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": np.arange(n, dtype="int64"),
            "y": rng.random(n),
            "name": [f"row-{i}" for i in range(n)],
            "year": np.where(np.arange(n) % 2 == 0, 2025, 2026),
        }
    )


def pandas_roundtrip(root: str) -> None:
    df = frame()
    df.to_parquet(f"{root}/pandas/df.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(f"{root}/pandas/df.parquet"), df)
    df.to_csv(f"{root}/pandas/df.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(f"{root}/pandas/df.csv"), df)


def pyarrow_hive_dataset(root: str) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, path = fsspec.core.url_to_fs(f"{root}/hive")
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    ds.write_dataset(
        table, path, filesystem=fs, format="parquet", partitioning=["year"], partitioning_flavor="hive"
    )
    written = sorted(fs.find(path))
    assert any("/year=2025/" in p for p in written) and any("/year=2026/" in p for p in written), written
    dataset = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    got = dataset.to_table(filter=ds.field("year") == 2026).to_pandas()
    want = frame()[lambda d: d.year == 2026]
    assert sorted(got.x) == sorted(want.x)
    assert dataset.count_rows() == len(frame())


def duckdb_glob(root: str) -> None:
    import duckdb

    for i in range(3):
        frame(100, seed=i).assign(part=i).to_parquet(f"{root}/duck/part-{i}.parquet")
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("aiobucket"))
    rows, parts, total = con.sql(
        f"select count(*), count(distinct part), sum(x) from read_parquet('{root}/duck/*.parquet')"
    ).fetchall()[0]
    assert (rows, parts, total) == (300, 3, 3 * sum(range(100))), (rows, parts, total)


def polars_roundtrip(root: str) -> None:
    import polars as pl

    df = pl.from_pandas(frame())
    with fsspec.open(f"{root}/polars/df.parquet", "wb") as f:
        df.write_parquet(f)
    # polars resolves only its own cloud schemes from a URL; other fsspec protocols
    # go through a file object (seekable, ranged reads).
    with fsspec.open(f"{root}/polars/df.parquet", "rb") as f:
        assert pl.read_parquet(f).equals(df)
    with fsspec.open(f"{root}/polars/df.csv", "wb") as f:
        df.write_csv(f)
    with fsspec.open(f"{root}/polars/df.csv", "rb") as f:
        assert pl.read_csv(f).equals(df)


def zarr_sharded(root: str) -> None:
    import zarr

    from aiobucket.fsspec import AiobucketFileSystem

    suffix_reads = []
    cat_file = AiobucketFileSystem._cat_file

    async def counting(self, path, start=None, end=None, **kw):  # type: ignore[no-untyped-def]
        if start is not None and start < 0 and end is None:
            suffix_reads.append(path)
        return await cat_file(self, path, start=start, end=end, **kw)

    AiobucketFileSystem._cat_file = counting  # type: ignore[method-assign]  # counts, then calls through
    try:
        data = np.arange(100 * 100, dtype="int32").reshape(100, 100)
        url = f"{root}/arrays/a.zarr"
        a = zarr.create_array(store=url, shape=data.shape, chunks=(10, 10), shards=(50, 50), dtype="int32")
        a[:] = data
        b = zarr.open_array(url, mode="r")
        np.testing.assert_array_equal(b[:], data)
        np.testing.assert_array_equal(b[12:37, 61:99], data[12:37, 61:99])
        assert b.shards == (50, 50)
    finally:
        AiobucketFileSystem._cat_file = cat_file  # type: ignore[method-assign]
    assert suffix_reads, "zarr read no shard index with a suffix range"


def dask_parquet(root: str) -> None:
    import dask
    import dask.dataframe as dd

    df = frame()
    dd.from_pandas(df, npartitions=4).to_parquet(f"{root}/dask", write_index=False)
    ddf = dd.read_parquet(f"{root}/dask")
    assert int(ddf.x.sum().compute(scheduler="threads")) == int(df.x.sum())
    # Worker processes rebuild the filesystem from its pickle and find the same
    # buckets through the same AIOBUCKET_CONFIG file.
    with dask.config.set({"multiprocessing.context": "spawn"}):
        total = ddf.x.sum().compute(scheduler="processes", num_workers=2)
    assert int(total) == int(df.x.sum())


ROUND_TRIPS = [
    pandas_roundtrip,
    pyarrow_hive_dataset,
    duckdb_glob,
    polars_roundtrip,
    zarr_sharded,
    dask_parquet,
]


def main(buckets: list[str]) -> None:
    for bucket in buckets:
        for roundtrip in ROUND_TRIPS:
            roundtrip(f"aiobucket://{bucket}")
            print(f"ok {bucket} {roundtrip.__name__}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
