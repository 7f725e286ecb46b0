"""Staging throughput against one raw single-stream WebHDFS read of the same bytes, in the
same run, against a real HDFS minicluster; and the time to restage an unchanged repository.

The repository: --models models x --files-per-model files of --file-mb MiB (default
8 x 8 x 8 MiB = 512 MiB), random bytes, plus config.pbtxt per model. The baseline reads
every byte once, file after file, through one HTTP stream at a time with HdfsCLI (no
writes, no verification). Staging writes to disk and verifies each file's HDFS checksum
(verification stays on). Targets (issue 4): >= 0.9x the raw throughput; an unchanged
repository restaged in <= 1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import hdfs

from tarn_node_agent.hdfs import Hdfs
from tarn_node_agent.staging import Stager


def upload(client: hdfs.InsecureClient, root: str, models: int, files: int, file_mb: int) -> int:
    total = 0
    block = os.urandom(1 << 20)
    for m in range(models):
        config = f'name: "model{m}"\nbackend: "python"\n'.encode()
        client.write(f"{root}/model{m}/config.pbtxt", data=config, overwrite=True)
        total += len(config)
        for f in range(files):
            data = b"".join(block[i:] + block[:i] for i in range(f + 1, f + 1 + file_mb))
            client.write(f"{root}/model{m}/1/weights-{f}.bin", data=data, overwrite=True)
            total += len(data)
    return total


def raw_read(client: hdfs.InsecureClient, root: str) -> int:
    total = 0
    for path, _, names in client.walk(root):
        for name in sorted(names):
            with client.read(f"{path}/{name}", chunk_size=4 << 20) as reader:
                for chunk in reader:
                    total += len(chunk)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhdfs-url", required=True)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--files-per-model", type=int, default=8)
    parser.add_argument("--file-mb", type=int, default=8)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    client = hdfs.InsecureClient(args.webhdfs_url, user="root")
    root = f"/bench/staging-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    try:
        total = upload(client, root, args.models, args.files_per_model, args.file_mb)
        raw_raw, staged_raw = [], []
        for _ in range(args.rounds):  # alternate, so neither side gets only the warm caches
            started = time.perf_counter()
            assert raw_read(client, root) == total
            raw_raw.append(total / (time.perf_counter() - started))
            shutil.rmtree(work / "stage", ignore_errors=True)
            stager = Stager(Hdfs.connect(args.webhdfs_url, auth="simple", user="root", environ={},
                                         pool_size=args.parallelism), work / "stage", parallelism=args.parallelism)
            started = time.perf_counter()
            staged = stager.stage("bench", root)
            staged_raw.append(total / (time.perf_counter() - started))
            assert staged.downloaded_bytes == total
        restage = Stager(Hdfs.connect(args.webhdfs_url, auth="simple", user="root", environ={}), work / "stage")
        started = time.perf_counter()
        again = restage.stage("bench", root)
        unchanged_s = time.perf_counter() - started
        assert again.unchanged
        raw_mbps, staged_mbps = max(raw_raw) / 1e6, max(staged_raw) / 1e6
        result = {
            "bytes": total, "files": args.models * args.files_per_model,
            "raw_single_stream_mb_per_s": round(raw_mbps, 1),
            "staging_mb_per_s": round(staged_mbps, 1),
            "staging_parallelism": args.parallelism, "checksums_verified": True,
            "throughput_ratio": round(staged_mbps / raw_mbps, 3),
            "unchanged_restage_s": round(unchanged_s, 3),
            "targets": {"throughput_ratio": ">= 0.9", "unchanged_restage_s": "<= 1.0"},
            "pass": staged_mbps / raw_mbps >= 0.9 and unchanged_s <= 1.0,
        }
        print(json.dumps(result, indent=2))
    finally:
        client.delete(root, recursive=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
