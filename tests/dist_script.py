"""A small run for test_distributed.py, started under torchrun or as processes with RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set:

    dist_script.py shard N          shard N indices, gather them on rank 0, print them as JSON;
                                    every rank prints what rank 0 broadcast
    dist_script.py fail RANK        RANK raises; the others wait at a barrier
    dist_script.py hang RANK        RANK never reaches the barrier; the others time out
"""
from __future__ import annotations

import json
import sys
import time

from uir.common.distributed import DistContext

TIMEOUT_S = 4.0


def main(mode: str, value: int) -> None:
    ctx = DistContext.from_env("cpu", timeout_s=TIMEOUT_S)
    with ctx.guard():
        if mode == "shard":
            gathered = ctx.gather({"rank": ctx.rank, "indices": ctx.shard(list(range(value)))})
            if ctx.is_main:
                print("GATHERED " + json.dumps(gathered), flush=True)
            chosen = ctx.broadcast(f"run folder of rank {ctx.rank}")
            print(f"RANK {ctx.rank} GOT {chosen}", flush=True)
        elif mode == "fail":
            if ctx.rank == value:
                raise ValueError(f"boom on purpose in rank {ctx.rank}")
            ctx.barrier()
        elif mode == "hang":
            if ctx.rank == value:
                time.sleep(3600)
            ctx.barrier()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
