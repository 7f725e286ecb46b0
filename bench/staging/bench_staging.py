"""Staging throughput against baselines measured in the same run, against a real HDFS
minicluster, and the restage times the node cache gives.

Cases:
- many files: --models x --files-per-model files of --file-mb MiB (default 8 x 8 x 8 MiB =
  512 MiB) plus a config.pbtxt per model.
- one big file: --big-file-mb MiB (default 2048) in one model; 0 skips it.
Baselines: raw single-stream WebHDFS (HdfsCLI reads every byte once, file after file, one
HTTP stream, no writes, no verification), and for the big file ``hadoop fs -get`` of the
same file (the JVM client, writing to local disk, its start included). Also measured: how
fast this machine writes the big file's bytes to the staging disk (write + fsync), the
ceiling for any staging, since staging writes what it reads.
Staging always starts from an empty node cache, writes to disk and verifies every file's
HDFS checksum. Restage: the same container again (unchanged repository), and a replacement
container (a new staging directory, the node cache warm).
Targets: many files >= 1.0x raw; big file >= 1.5x raw; both restages <= 1 s. Exits 1 when
one is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator

import hdfs

from tarn_node_agent.node_cache import NodeCache
from tarn_node_agent.hdfs import Hdfs
from tarn_node_agent.staging import Stager

MIB = 1 << 20


def pattern(mib: int, seed: int) -> Iterator[bytes]:
    """Distinct 1 MiB pieces without generating mib MiB of random bytes."""
    block = os.urandom(MIB)
    for i in range(mib):
        k = (seed * 7919 + i * 104729) % MIB
        yield block[k:] + block[:k]


def upload_many(client: hdfs.InsecureClient, root: str, models: int, files: int, file_mb: int) -> int:
    total = 0
    for m in range(models):
        config = f'name: "model{m}"\nbackend: "python"\n'.encode()
        client.write(f"{root}/model{m}/config.pbtxt", data=config, overwrite=True)
        total += len(config)
        for f in range(files):
            client.write(f"{root}/model{m}/1/weights-{f}.bin", data=pattern(file_mb, m * files + f), overwrite=True)
            total += file_mb * MIB
    return total


def upload_big(client: hdfs.InsecureClient, root: str, mib: int) -> int:
    client.write(f"{root}/engine/config.pbtxt", data=b'name: "engine"\nbackend: "python"\n', overwrite=True)
    client.write(f"{root}/engine/1/engine.plan", data=pattern(mib, 1), overwrite=True)
    return mib * MIB + client.status(f"{root}/engine/config.pbtxt")["length"]


def raw_read(client: hdfs.InsecureClient, root: str) -> int:
    total = 0
    for path, _, names in client.walk(root):
        for name in sorted(names):
            with client.read(f"{path}/{name}", chunk_size=4 * MIB) as reader:
                for chunk in reader:
                    total += len(chunk)
    return total


def hadoop_get(url: str, path: str, target: Path) -> None:
    subprocess.run(["hadoop", "fs", "-get", url + path, str(target)], check=True, capture_output=True, timeout=900)


def local_write(target: Path, nbytes: int) -> None:
    chunk = os.urandom(4 * MIB)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(nbytes // len(chunk)):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.client = hdfs.InsecureClient(args.webhdfs_url, user="root")

    def stager(self, name: str) -> Stager:
        a = self.args
        return Stager(Hdfs.connect(a.webhdfs_url, auth="simple", user="root", environ={}, pool_size=a.parallelism),
                      self.work / name, cache=NodeCache(self.work / "cache", 1 << 50), parallelism=a.parallelism,
                      range_bytes=a.range_mb * MIB)

    def cold_stage(self, root: str, total: int) -> float:
        shutil.rmtree(self.work / "cache", ignore_errors=True)
        shutil.rmtree(self.work / "stage", ignore_errors=True)
        stager = self.stager("stage")
        elapsed = timed(lambda: stager.stage("bench", root))
        assert stager.progress.bytes_done == total, (stager.progress.bytes_done, total)
        return elapsed

    def case(self, root: str, total: int, rounds: int, big: bool) -> Dict:
        raw, staged, get = [], [], []
        for _ in range(rounds):  # alternate, so neither side gets only the warm caches
            raw.append(timed(lambda: self._check(raw_read(self.client, root), total)))
            if big:
                target = self.work / "get.bin"
                get.append(timed(lambda: hadoop_get(self.args.hdfs_default_fs, f"{root}/engine/1/engine.plan",
                                                    target)))
                target.unlink()
            staged.append(self.cold_stage(root, total))
        best = {"raw_single_stream": min(raw), "staging": min(staged)}
        if get:
            best["hadoop_fs_get"] = min(get)
        result = {f"{k}_mb_per_s": round(total / v / 1e6, 1) for k, v in best.items()}
        result["bytes"] = total
        result["ratio_vs_raw"] = round(best["raw_single_stream"] / best["staging"], 3)
        if get:
            result["ratio_vs_hadoop_fs_get"] = round(best["hadoop_fs_get"] / best["staging"], 3)
        return result

    @staticmethod
    def _check(got: int, want: int) -> None:
        assert got == want, (got, want)

    def restages(self, root: str) -> Dict:
        """After ``case``: "stage" and the cache hold the repository."""
        unchanged = self.stager("stage")
        unchanged_s = timed(lambda: unchanged.stage("bench", root))
        assert unchanged.progress.bytes_done == 0
        replacement = self.stager("replacement")
        replacement_s = timed(lambda: replacement.stage("bench", root))
        assert replacement.progress.bytes_done == 0
        return {"unchanged_restage_s": round(unchanged_s, 3), "replacement_container_restage_s": round(replacement_s, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhdfs-url", required=True)
    parser.add_argument("--hdfs-default-fs", default=os.environ.get("HDFS_DEFAULT_FS", ""))
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--files-per-model", type=int, default=8)
    parser.add_argument("--file-mb", type=int, default=8)
    parser.add_argument("--big-file-mb", type=int, default=2048)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--range-mb", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the many-files case")
    parser.add_argument("--big-rounds", type=int, default=1, help="rounds of the big-file case")
    args = parser.parse_args()

    bench_dir = Path(os.environ.get("TARN_BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="bench-staging-", dir=bench_dir))
    bench = Bench(args, work)
    many_root, big_root = f"/bench/staging-{os.getpid()}/many", f"/bench/staging-{os.getpid()}/big"
    result: Dict = {"parallelism": args.parallelism, "range_mb": args.range_mb, "checksums_verified": True,
                    "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}
    try:
        many_total = upload_many(bench.client, many_root, args.models, args.files_per_model, args.file_mb)
        result["many_files"] = {"files": args.models * args.files_per_model,
                                **bench.case(many_root, many_total, args.rounds, big=False)}
        result.update(bench.restages(many_root))
        passed = result["many_files"]["ratio_vs_raw"] >= 1.0
        if args.big_file_mb:
            big_total = upload_big(bench.client, big_root, args.big_file_mb)
            result["big_file"] = bench.case(big_root, big_total, args.big_rounds, big=True)
            ceiling_s = timed(lambda: local_write(work / "write.bin", args.big_file_mb * MIB))
            (work / "write.bin").unlink()
            result["big_file"]["local_write_fsync_mb_per_s"] = round(args.big_file_mb * MIB / ceiling_s / 1e6, 1)
            # What this machine allows: staging cannot beat writing the bytes to its disk.
            result["big_file"]["machine_allows_ratio_vs_raw"] = round(
                result["big_file"]["local_write_fsync_mb_per_s"] / result["big_file"]["raw_single_stream_mb_per_s"], 3)
            passed = passed and result["big_file"]["ratio_vs_raw"] >= 1.5
        passed = passed and result["unchanged_restage_s"] <= 1.0 and result["replacement_container_restage_s"] <= 1.0
        result["targets"] = {"many_files.ratio_vs_raw": ">= 1.0", "big_file.ratio_vs_raw": ">= 1.5",
                             "unchanged_restage_s": "<= 1.0", "replacement_container_restage_s": "<= 1.0"}
        result["pass"] = passed
        print(json.dumps(result, indent=2))
        return 0 if passed else 1
    finally:
        bench.client.delete(f"/bench/staging-{os.getpid()}", recursive=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
