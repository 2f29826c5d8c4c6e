"""``lstm-sym torch-example``: train a peephole LSTM, a cell PyTorch does not have, in a standard
PyTorch loop.

A character-level model on the shipped public-domain text (``data/public_domain.txt``): one-hot
characters into ``lstm_sym.torch.RNN("peephole_lstm", ...)`` (batch first), a linear read-out,
cross-entropy on the next character; ``torch.utils.data.DataLoader`` over windows of the text,
``torch.optim.Adam``, gradient clipping (``clip_grad_norm_``), a progress line on stderr (no
dependency) and the loss curve as CSV (and PNG when matplotlib is installed) in ``--out-dir``.
The default run takes well under a minute on one core.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from .train import DATA

DEFAULT_OUT_DIR = Path("build") / "torch-example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=12, help="passes over the text (%(default)s)")
    parser.add_argument("--hidden-size", type=int, default=64, help="(%(default)s)")
    parser.add_argument("--seq-len", type=int, default=32, help="characters a window (%(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(%(default)s)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate (%(default)s)")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (%(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="(%(default)s)")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="loss.csv, loss.png (%(default)s)"
    )


def _progress(step: int, total: int, loss: float, started: float) -> None:
    width = 30
    done = int(width * step / total)
    rate = step / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(
        f"\r[{'#' * done}{'.' * (width - done)}] {step}/{total} loss {loss:.3f} {rate:.1f} step/s"
    )
    sys.stderr.flush()


def train(args: argparse.Namespace) -> list[tuple[int, float]]:
    """Train; returns the loss curve as (step, loss)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    from ..torch import RNN

    torch.manual_seed(args.seed)
    text = DATA.read_text(encoding="utf-8")
    alphabet = sorted(set(text))
    codes = torch.tensor([alphabet.index(ch) for ch in text])
    starts = range(0, len(codes) - args.seq_len - 1, args.seq_len // 2)
    windows = torch.stack([codes[s : s + args.seq_len + 1] for s in starts])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(windows),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )

    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = RNN("peephole_lstm", len(alphabet), args.hidden_size, batch_first=True)
            self.readout = nn.Linear(args.hidden_size, len(alphabet))

        def forward(self, characters):
            outputs, _ = self.rnn(F.one_hot(characters, len(alphabet)).float())
            return self.readout(outputs)

    model = CharModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    total = args.epochs * len(loader)
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    curve, step, started = [], 0, time.perf_counter()
    while step < total:
        for (batch,) in loader:
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, len(alphabet)), batch[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            curve.append((step, loss.detach().item()))
            _progress(step, total, curve[-1][1], started)
            if step == total:
                break
    sys.stderr.write("\n")
    return curve


def run(args: argparse.Namespace) -> int:
    curve = train(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "loss.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["step", "loss"])
        writer.writerows(curve)
    print(f"loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f} in {len(curve)} steps")
    print(f"wrote {args.out_dir / 'loss.csv'}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss.png")
        return 0
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([s for s, _ in curve], [v for _, v in curve])
    axes.set(xlabel="step", ylabel="cross-entropy", title="peephole LSTM (lstm_sym.torch.RNN)")
    figure.tight_layout()
    figure.savefig(args.out_dir / "loss.png", dpi=100)
    plt.close(figure)
    print(f"wrote {args.out_dir / 'loss.png'}")
    return 0
