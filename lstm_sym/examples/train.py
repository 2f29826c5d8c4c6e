"""Train a character-level LSTM with the generated kernels, and the same model in PyTorch.

    python -m lstm_sym.examples.train [--epochs 40] [--out train-example-output]
    lstm-sym train-example ...

Data: ``data/public_domain.txt`` (the Gettysburg Address and the opening of the Declaration of
Independence, ~2.5 KB, shipped with the package). Model: one-hot characters -> a stacked
:class:`~lstm_sym.models.Recurrent` LSTM -> a :class:`~lstm_sym.models.Dense` head -> softmax
cross-entropy on the next character; Adam with gradient clipping by global norm.

Unless ``--no-torch``, the same model is trained in PyTorch (``nn.LSTM`` + ``nn.Linear``) from
the same initial weights, on the same batches in the same order, with ``torch.optim.Adam`` and
``clip_grad_norm_``: in float64 the two loss curves agree step for step (the largest
difference is printed). Writes ``loss_curve.png``, ``losses.csv``, ``samples.txt`` and the
trained ``model.npz`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_sym.models import Adam, Dense, Recurrent, clip_grad_norm, cross_entropy, softmax

DATA = Path(__file__).resolve().parent / "data" / "public_domain.txt"


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    text: str
    alphabet: str
    codes: np.ndarray  # (N,) int64

    @classmethod
    def load(cls, path: Path = DATA) -> Corpus:
        text = path.read_text(encoding="utf-8")
        alphabet = "".join(sorted(set(text)))
        index = {ch: k for k, ch in enumerate(alphabet)}
        return cls(text, alphabet, np.array([index[ch] for ch in text], dtype=np.int64))

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self.alphabet))
        if unknown:
            raise ValueError(f"characters not in the alphabet: {unknown}")
        return np.array([self.alphabet.index(ch) for ch in text], dtype=np.int64)

    def one_hot(self, codes: np.ndarray, dtype=np.float64) -> np.ndarray:
        return np.eye(len(self.alphabet), dtype=dtype)[codes]


def batches(corpus: Corpus, seq_len: int, batch_size: int, rng: np.random.Generator):
    """One epoch: windows of ``seq_len + 1`` characters starting every ``seq_len // 2``,
    shuffled; yields (inputs codes (T, B), targets (T, B))."""
    starts = np.arange(0, corpus.codes.size - seq_len - 1, max(seq_len // 2, 1))
    starts = rng.permutation(starts)
    for k in range(0, starts.size, batch_size):
        chunk = starts[k : k + batch_size]
        windows = np.stack([corpus.codes[s : s + seq_len + 1] for s in chunk], axis=1)
        yield windows[:-1], windows[1:]


# -- the model ----------------------------------------------------------------------------------


class CharModel:
    """Recurrent LSTM layers and a dense head over one-hot characters."""

    def __init__(
        self, vocabulary: int, hidden: int, layers: int, *, seed: int, cell=None, dtype=np.float64
    ):
        rng = np.random.default_rng(seed)
        self.rnn = Recurrent(vocabulary, hidden, layers, cell=cell, rng=rng, dtype=dtype)
        self.head = Dense(hidden, vocabulary, rng=rng, dtype=dtype)
        self.vocabulary = vocabulary

    def named_parameters(self) -> dict[str, np.ndarray]:
        named = {f"rnn.{k}": v for k, v in self.rnn.named_parameters().items()}
        named.update({f"head.{k}": v for k, v in self.head.named_parameters().items()})
        return named

    def loss_and_gradients(self, inputs: np.ndarray, targets: np.ndarray):
        """Mean cross-entropy of the next character and its gradients (by name)."""
        hidden, _, rnn_cache = self.rnn.forward(inputs)
        logits, head_cache = self.head.forward(hidden)
        loss, d_logits = cross_entropy(logits, targets)
        head_grads, d_hidden = self.head.backward(head_cache, d_logits)
        rnn_grads = self.rnn.backward(rnn_cache, d_hidden)
        grads = {f"rnn.{k}": v for k, v in rnn_grads.parameters.items()}
        grads.update({f"head.{k}": v for k, v in head_grads.items()})
        return loss, grads

    def continue_text(self, corpus: Corpus, prompt: str, length: int) -> str:
        """Greedy continuation of ``prompt`` (the most likely next character each step)."""
        self.rnn.eval()
        codes = corpus.encode(prompt)
        hidden, states, _ = self.rnn.forward(corpus.one_hot(codes)[:, None, :])
        out = []
        for _ in range(length):
            logits, _ = self.head.forward(hidden[-1])
            code = int(np.argmax(softmax(logits)[0]))
            out.append(corpus.alphabet[code])
            hidden, states, _ = self.rnn.forward(
                corpus.one_hot(np.array([code]))[:, None, :], states
            )
        self.rnn.train()
        return "".join(out)

    def accuracy(self, corpus: Corpus) -> float:
        """Next-character accuracy over the whole text (teacher forcing)."""
        self.rnn.eval()
        hidden, _, _ = self.rnn.forward(corpus.one_hot(corpus.codes[:-1]))
        logits, _ = self.head.forward(hidden)
        self.rnn.train()
        return float(np.mean(np.argmax(logits, axis=-1) == corpus.codes[1:]))


# -- training -----------------------------------------------------------------------------------


@dataclass
class Config:
    epochs: int = 40
    hidden: int = 64
    layers: int = 2
    seq_len: int = 48
    batch_size: int = 16
    lr: float = 1e-2
    clip: float = 1.0
    seed: int = 0
    backend: str = "numpy"  # or "c": the generated C kernels through lstm_sym.native
    max_steps: int | None = None  # stop early (tests)


@dataclass
class Result:
    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)


class Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, else a line per tenth)."""

    def __init__(self, total: int, label: str, enabled: bool = True, width: int = 30):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.tty = sys.stderr.isatty()
        self.last_tenth = -1

    def update(self, done: int, message: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {done}/{self.total} {message}"
        if self.tty:
            print("\r" + line, end="\n" if done == self.total else "", file=sys.stderr, flush=True)
        elif (tenth := 10 * done // self.total) != self.last_tenth:
            self.last_tenth = tenth
            print(line, file=sys.stderr, flush=True)


def _cell(backend: str):
    if backend == "numpy":
        return None
    if backend == "c":
        from lstm_sym import native

        return native.load("lstm")
    raise ValueError(f"backend must be 'numpy' or 'c', got {backend!r}")


def train(config: Config, corpus: Corpus | None = None, progress: bool = False):
    """Train with the generated kernels; returns ``(model, initial_state, Result)`` where
    ``initial_state`` is the model's weights before training (for the PyTorch run)."""
    corpus = corpus or Corpus.load()
    model = CharModel(
        len(corpus.alphabet),
        config.hidden,
        config.layers,
        seed=config.seed,
        cell=_cell(config.backend),
    )
    initial = {k: v.copy() for k, v in _torch_state(model).items()}
    optimizer = Adam(model.named_parameters(), lr=config.lr)
    data_rng = np.random.default_rng(config.seed + 1)
    result = Result()
    bar = Progress(config.epochs, "lstm_sym", enabled=progress)
    for epoch in range(config.epochs):
        start, epoch_losses = time.perf_counter(), []
        for inputs, targets in batches(corpus, config.seq_len, config.batch_size, data_rng):
            loss, grads = model.loss_and_gradients(corpus.one_hot(inputs), targets)
            if config.clip:
                clip_grad_norm(grads, config.clip)
            optimizer.step(grads)
            result.losses.append(loss)
            epoch_losses.append(loss)
            if config.max_steps and len(result.losses) >= config.max_steps:
                break
        result.seconds_per_epoch.append(time.perf_counter() - start)
        result.epoch_losses.append(float(np.mean(epoch_losses)))
        bar.update(epoch + 1, f"loss {result.epoch_losses[-1]:.4f}")
        if config.max_steps and len(result.losses) >= config.max_steps:
            break
    return model, initial, result


def _torch_state(model: CharModel) -> dict[str, np.ndarray]:
    state = {f"rnn.{k}": v for k, v in model.rnn.to_torch_state_dict().items()}
    state.update({f"head.{k}": v for k, v in model.head.to_torch_state_dict().items()})
    return state


def train_torch(
    config: Config,
    initial: dict[str, np.ndarray],
    corpus: Corpus | None = None,
    progress: bool = False,
    dtype: str = "float64",
) -> Result:
    """The same training in PyTorch: same initial weights, batches, order and optimizer."""
    import torch

    corpus = corpus or Corpus.load()
    torch_dtype = getattr(torch, dtype)
    vocabulary = len(corpus.alphabet)

    class TorchCharModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(vocabulary, config.hidden, config.layers)
            self.head = torch.nn.Linear(config.hidden, vocabulary)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    model = TorchCharModel().to(torch_dtype)
    model.load_state_dict(
        {k: torch.from_numpy(v.copy()).to(torch_dtype) for k, v in initial.items()}
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data_rng = np.random.default_rng(config.seed + 1)
    result = Result()
    bar = Progress(config.epochs, "pytorch ", enabled=progress)
    for epoch in range(config.epochs):
        start, epoch_losses = time.perf_counter(), []
        for inputs, targets in batches(corpus, config.seq_len, config.batch_size, data_rng):
            x = torch.from_numpy(corpus.one_hot(inputs)).to(torch_dtype)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, vocabulary), torch.from_numpy(targets.reshape(-1))
            )
            optimizer.zero_grad()
            loss.backward()
            if config.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            value = loss.detach().item()
            result.losses.append(value)
            epoch_losses.append(value)
            if config.max_steps and len(result.losses) >= config.max_steps:
                break
        result.seconds_per_epoch.append(time.perf_counter() - start)
        result.epoch_losses.append(float(np.mean(epoch_losses)))
        bar.update(epoch + 1, f"loss {result.epoch_losses[-1]:.4f}")
        if config.max_steps and len(result.losses) >= config.max_steps:
            break
    return result


# -- outputs ------------------------------------------------------------------------------------


def plot(path: Path, ours: Result, theirs: Result | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(ours.losses, label="lstm_sym (generated kernels)", linewidth=2)
    if theirs is not None:
        axis.plot(theirs.losses, "--", label="PyTorch (same initial weights)", linewidth=1)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.set_title("Character-level LSTM on public-domain text")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


PROMPTS = ("Four score and ", "We hold these ", "government of the ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--layers", type=int, default=defaults.layers)
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--clip", type=float, default=defaults.clip, help="0: no clipping")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--backend",
        choices=("numpy", "c"),
        default=defaults.backend,
        help="generated NumPy kernels, or the generated C through lstm_sym.native",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("train-example-output"),
        help="directory for loss_curve.png, losses.csv, samples.txt, model.npz",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = Config(
        epochs=args.epochs,
        hidden=args.hidden,
        layers=args.layers,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        lr=args.lr,
        clip=args.clip,
        seed=args.seed,
        backend=args.backend,
        max_steps=args.max_steps,
    )
    corpus = Corpus.load()
    progress = not args.quiet
    print(f"data: {DATA.name}, {len(corpus.text)} characters, alphabet of {len(corpus.alphabet)}")
    print(
        f"model: {config.layers} x LSTM({config.hidden}) + Dense, Adam(lr={config.lr}), "
        f"clip {config.clip}, {config.epochs} epochs, backend {config.backend}"
    )
    model, initial, ours = train(config, corpus, progress=progress)
    theirs = None
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: no comparison (pip install torch)")
        else:
            theirs = train_torch(config, initial, corpus, progress=progress)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(args.out / "loss_curve.png", ours, theirs)
    with open(args.out / "losses.csv", "w", encoding="utf-8") as file:
        file.write("step,lstm_sym" + (",pytorch\n" if theirs else "\n"))
        for k, loss in enumerate(ours.losses):
            file.write(f"{k},{loss!r}" + (f",{theirs.losses[k]!r}\n" if theirs else "\n"))
    model.rnn.save(args.out / "model.npz")
    model.head.save(args.out / "head.npz")
    samples = [f"{prompt!r} -> {model.continue_text(corpus, prompt, 60)!r}" for prompt in PROMPTS]
    accuracy = model.accuracy(corpus)
    (args.out / "samples.txt").write_text("\n".join(samples) + "\n", encoding="utf-8")

    first, last = ours.epoch_losses[0], ours.epoch_losses[-1]
    print(
        f"loss (mean per epoch): {first:.4f} (epoch 1) -> {last:.4f} "
        f"(epoch {len(ours.epoch_losses)})"
    )
    print(f"next-character accuracy on the text: {accuracy:.1%}")
    steady = ours.seconds_per_epoch[1:] or ours.seconds_per_epoch
    print(f"time per epoch, lstm_sym ({config.backend}): {np.median(steady) * 1e3:.1f} ms")
    if theirs is not None:
        steady = theirs.seconds_per_epoch[1:] or theirs.seconds_per_epoch
        print(f"time per epoch, PyTorch (float64):   {np.median(steady) * 1e3:.1f} ms")
        difference = np.abs(np.array(ours.losses) - np.array(theirs.losses))
        print(
            f"loss curves, lstm_sym vs PyTorch: max |difference| over {difference.size} steps "
            f"{difference.max():.2e} (first 10 steps: {difference[:10].max():.2e})"
        )
    print("samples (greedy continuation):")
    for line in samples:
        print("  " + line)
    print(f"wrote {args.out}/loss_curve.png, losses.csv, samples.txt, model.npz, head.npz")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_sym.examples.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
