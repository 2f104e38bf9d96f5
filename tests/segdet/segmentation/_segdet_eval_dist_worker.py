"""One rank of the two-process evaluator sync test (kept light: spawned children import it)."""

from __future__ import annotations

import torch


def run_rank(rank: int, init_file: str, out_file: str) -> None:
    from segdet.segmentation import SegmentationEvaluator

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        gen = torch.Generator().manual_seed(100 + rank)
        logits = torch.randn(1, 3, 4, 4, generator=gen)
        mask = torch.randint(0, 3, (1, 4, 4), generator=gen)
        ev = SegmentationEvaluator(3, 255, None, "cpu")
        ev.update(torch.nn.Identity(), {"image": logits, "mask": mask, "index": torch.tensor([rank])})
        local = ev.confusion().clone()
        ev.sync()
        ev.sync()  # idempotent: must not add the other rank twice
        result = {"local": local, "synced": ev.confusion(), "miou": ev.compute()["miou"], "per_image": ev.per_image()}
        torch.save(result, f"{out_file}.{rank}")
    finally:
        torch.distributed.destroy_process_group()
