"""DistributedDataParallel over 2 processes (gloo, 127.0.0.1) vs one process on the whole batch.

``python tests/scripts/ddp_train.py MODEL`` (MODEL ``nn.LSTM`` or a cell name for
``lstm_sym.torch.RNN``): 3 SGD steps of the same float64 model on a batch of 4, once in this
process on the whole batch and once as 2 spawned ranks on 2 rows each (loss: the mean of the
squared outputs, so DDP's averaged gradients are the whole batch's). Prints one JSON line: the
largest relative difference of any parameter on any rank, and the ranks' mutual difference.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile

import torch

STEPS, BATCH, TIME, EVENT, HIDDEN = 3, 4, 5, 3, 4


def build(kind: str):
    torch.manual_seed(0)
    if kind == "nn.LSTM":
        model = torch.nn.LSTM(EVENT, HIDDEN)
    else:
        from lstm_sym.torch import RNN

        model = RNN(kind, EVENT, HIDDEN)
    return model.double()


def data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(STEPS, TIME, BATCH, EVENT, dtype=torch.float64, generator=generator)


def train(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for events in batches:
        optimizer.zero_grad()
        outputs, _ = model(events)
        outputs.pow(2).mean().backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def rank_main(rank: int, kind: str, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(build(kind))
    rows = slice(2 * rank, 2 * rank + 2)
    params = train(model, [events[:, rows] for events in data()])
    torch.save({k.removeprefix("module."): v for k, v in params.items()}, f"{out}/{rank}.pt")
    # Both ranks are done once the barrier returns. Leave without gloo's teardown: its
    # destructors aborted the process (SIGABRT, "terminate called without an active
    # exception") in about 1 run of 5 on a CI machine, after the results were written, for
    # nn.LSTM as for our cells. An exception above still takes the normal path (spawn reports it).
    torch.distributed.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(kind: str) -> int:
    torch.set_num_threads(1)
    whole = train(build(kind), list(data()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.spawn(rank_main, args=(kind, port, out), nprocs=2, join=True)
        ranks = [torch.load(f"{out}/{r}.pt") for r in range(2)]

    def error(a, b):
        return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)

    with torch.no_grad():
        moved = max(float((whole[k] - p).abs().max()) for k, p in build(kind).named_parameters())
    print(
        json.dumps(
            {
                "vs_one_process": max(error(r, whole) for r in ranks),
                "between_ranks": error(ranks[0], ranks[1]),
                "parameters_moved": moved,
                "names": sorted(whole),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
