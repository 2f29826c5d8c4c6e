"""Train a character-level LSTM with the generated kernels, and check it against PyTorch.

    lstm-sym train-example [--epochs 40] [--torch-steps 35] [--out-dir build/train-example] ...
    python -m lstm_sym.examples.train ...

Data: ``data/public_domain.txt`` (the Gettysburg Address and the opening of the Declaration of
Independence, ~2.5 KB, shipped with the package). Model: one-hot characters -> a stacked
:class:`~lstm_sym.models.Recurrent` LSTM -> a :class:`~lstm_sym.models.Dense` head -> softmax
cross-entropy on the next character; Adam with gradient clipping by global norm.

The same model is then trained in PyTorch (``nn.LSTM`` + ``nn.Linear``, float64, one thread)
from the same initial weights, on the same batches in the same order, with
``torch.optim.Adam`` and ``clip_grad_norm_``, for the first ``--torch-steps`` optimizer steps
(``all``: the whole run; 0: no comparison); the two loss curves agree step for step (the
largest difference is printed). Writes ``loss_curve.png``, ``losses.csv``, ``samples.txt``,
and the trained ``model.npz`` and ``head.npz`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_sym.models import Adam, Dense, Recurrent, clip_grad_norm, cross_entropy, softmax

DATA = Path(__file__).resolve().parent / "data" / "public_domain.txt"
#: Where the outputs go unless ``--out-dir`` says otherwise: a scratch folder under the working
#: directory (``build/`` is in the checkout's .gitignore).
DEFAULT_OUT_DIR = Path("build") / "train-example"
#: Optimizer steps compared with PyTorch by default: five epochs at the default sizes; the whole
#: run (280 steps) is opt-in (``--torch-steps all``). PyTorch runs on one thread: on a busy
#: 2-core machine its two threads took 250-360 ms a step of this small float64 model, one thread
#: 30-80 ms (2026-12-04).
DEFAULT_TORCH_STEPS = 35


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


def _window_starts(corpus: Corpus, seq_len: int) -> np.ndarray:
    return np.arange(0, corpus.codes.size - seq_len - 1, max(seq_len // 2, 1))


def batches(corpus: Corpus, seq_len: int, batch_size: int, rng: np.random.Generator):
    """One epoch: windows of ``seq_len + 1`` characters starting every ``seq_len // 2``,
    shuffled; yields (inputs codes (T, B), targets (T, B))."""
    starts = rng.permutation(_window_starts(corpus, seq_len))
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

    def steps(self, corpus: Corpus) -> int:
        """Optimizer steps of the whole run: ``epochs`` times the batches of an epoch, or
        ``max_steps`` if that is fewer."""
        windows = _window_starts(corpus, self.seq_len).size
        total = self.epochs * -(-windows // self.batch_size)
        return min(total, self.max_steps) if self.max_steps else total


@dataclass
class Result:
    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    seconds_per_step: list[float] = field(default_factory=list)


class Progress:
    """A one-line progress bar over the optimizer steps on stderr (redrawn on a terminal, else a
    line per tenth)."""

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
    bar = Progress(config.steps(corpus), "lstm_sym", enabled=progress)
    for epoch in range(config.epochs):
        start, epoch_losses = time.perf_counter(), []
        for inputs, targets in batches(corpus, config.seq_len, config.batch_size, data_rng):
            step_start = time.perf_counter()
            loss, grads = model.loss_and_gradients(corpus.one_hot(inputs), targets)
            if config.clip:
                clip_grad_norm(grads, config.clip)
            optimizer.step(grads)
            result.seconds_per_step.append(time.perf_counter() - step_start)
            result.losses.append(loss)
            epoch_losses.append(loss)
            bar.update(len(result.losses), f"epoch {epoch + 1} loss {loss:.4f}")
            if config.max_steps and len(result.losses) >= config.max_steps:
                break
        result.seconds_per_epoch.append(time.perf_counter() - start)
        result.epoch_losses.append(float(np.mean(epoch_losses)))
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
    threads: int | None = None,
) -> Result:
    """The same training in PyTorch: same initial weights, batches, order and optimizer.
    ``threads``: PyTorch's intra-op threads during the run (restored after; None: as set)."""
    with _torch_threads(threads):
        return _train_torch(config, initial, corpus or Corpus.load(), progress, dtype)


@contextmanager
def _torch_threads(threads: int | None):
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_torch(config, initial, corpus, progress, dtype) -> Result:
    import torch

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
    bar = Progress(config.steps(corpus), "pytorch ", enabled=progress)
    for epoch in range(config.epochs):
        start, epoch_losses = time.perf_counter(), []
        for inputs, targets in batches(corpus, config.seq_len, config.batch_size, data_rng):
            step_start = time.perf_counter()
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
            result.seconds_per_step.append(time.perf_counter() - step_start)
            result.losses.append(value)
            epoch_losses.append(value)
            bar.update(len(result.losses), f"epoch {epoch + 1} loss {value:.4f}")
            if config.max_steps and len(result.losses) >= config.max_steps:
                break
        result.seconds_per_epoch.append(time.perf_counter() - start)
        result.epoch_losses.append(float(np.mean(epoch_losses)))
        if config.max_steps and len(result.losses) >= config.max_steps:
            break
    return result


# -- outputs ------------------------------------------------------------------------------------


def plot(path: Path, ours: Result, theirs: Result | None) -> bool:
    """Write the loss curves to ``path`` (PNG); False, and nothing written, without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(ours.losses, label="lstm_sym (generated kernels)", linewidth=2)
    if theirs is not None:
        label = "PyTorch (same initial weights)"
        if len(theirs.losses) < len(ours.losses):
            label = f"PyTorch, first {len(theirs.losses)} steps (same initial weights)"
        axis.plot(theirs.losses, "--", label=label, linewidth=1)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.set_title("Character-level LSTM on public-domain text")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


PROMPTS = ("Four score and ", "We hold these ", "government of the ")

DESCRIPTION = """\
Train a character-level model on a 2.5 KB public-domain text shipped with the package (one-hot
characters -> stacked LSTM -> dense head -> softmax cross-entropy on the next character; Adam,
gradient clipping by global norm), with the generated kernels in float64. Then train the same
model in PyTorch (nn.LSTM + nn.Linear, float64, one thread) from the same initial weights on the
same batches in the same order for the first --torch-steps optimizer steps, and print the
largest difference between the two loss curves. Writes the loss curves (loss_curve.png, needs
matplotlib; losses.csv), greedy samples (samples.txt) and the trained weights (model.npz,
head.npz) to --out-dir.

The default run took 35 s on a busy 2-core machine (with --torch-steps all, 57 s)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; option help wrapped at spaces only, so that option names
    and paths (``--seq-len``, ``build/train-example``) are never split at their hyphens."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _torch_steps(text: str) -> int | None:
    """``--torch-steps``: a number of optimizer steps (0 or more), or ``all`` (None)."""
    if text == "all":
        return None
    try:
        steps = int(text)
    except ValueError:
        steps = -1
    if steps < 0:
        raise argparse.ArgumentTypeError(f"expected a number of steps >= 0 or 'all', got {text!r}")
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    parser.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        metavar="N",
        help="passes over the text; 7 optimizer steps each at the default --seq-len and "
        "--batch-size (default: %(default)s)",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=defaults.hidden,
        metavar="H",
        help="units per LSTM layer (default: %(default)s)",
    )
    parser.add_argument(
        "--layers",
        type=int,
        default=defaults.layers,
        metavar="L",
        help="stacked LSTM layers (default: %(default)s)",
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=defaults.seq_len,
        metavar="T",
        help="characters per training window, the time steps backpropagated through; windows "
        "start every T/2 characters (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        metavar="B",
        help="windows per optimizer step (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=defaults.lr,
        metavar="RATE",
        help="Adam's learning rate (default: %(default)s)",
    )
    parser.add_argument(
        "--clip",
        type=float,
        default=defaults.clip,
        metavar="NORM",
        help="scale the gradients down to at most this global L2 norm; 0: no clipping "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed of the initial weights; the batch order uses seed+1 (default: %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=("numpy", "c"),
        default=defaults.backend,
        help="numpy: the generated NumPy kernels (generated/lstm.py); c: the generated C kernels "
        "through lstm_sym.native, compiled on first use with the system's C compiler "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        metavar="N",
        help="stop after N optimizer steps in all, even within an epoch (default: no limit)",
    )
    parser.add_argument(
        "--torch-steps",
        type=_torch_steps,
        default=DEFAULT_TORCH_STEPS,
        metavar="N|all",
        help="train the same model in PyTorch (float64, one thread) for the first N optimizer "
        "steps and compare the loss curves step for step; 'all': every step of the run (280 at "
        "the defaults); 0: no comparison; skipped, with a message, when PyTorch is not "
        "installed (default: %(default)s, five epochs at the defaults)",
    )
    parser.add_argument(
        "--no-torch",
        dest="torch_steps",
        action="store_const",
        const=0,
        default=argparse.SUPPRESS,
        help="no PyTorch comparison: the same as --torch-steps 0",
    )
    parser.add_argument(
        "--out-dir",
        "--out",
        dest="out_dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        metavar="DIR",
        help="directory for loss_curve.png, losses.csv, samples.txt, model.npz and head.npz, "
        "created if missing; relative to the working directory (default: %(default)s)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars on stderr (default: shown)"
    )


def _median_ms(seconds: list[float]) -> float:
    return float(np.median(seconds)) * 1e3


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
    steps = config.steps(corpus)
    compared = steps if args.torch_steps is None else min(args.torch_steps, steps)
    print(f"data: {DATA.name}, {len(corpus.text)} characters, alphabet of {len(corpus.alphabet)}")
    print(
        f"model: {config.layers} x LSTM({config.hidden}) + Dense, Adam(lr={config.lr}), "
        f"clip {config.clip}, {config.epochs} epochs ({steps} steps), backend {config.backend}, "
        f"float64; PyTorch comparison over {compared} steps"
    )
    model, initial, ours = train(config, corpus, progress=progress)
    theirs = None
    if compared:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: no comparison (pip install -e '.[test]')")
        else:
            short = dataclasses.replace(config, max_steps=compared)
            theirs = train_torch(short, initial, corpus, progress=progress, threads=1)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if plot(out / "loss_curve.png", ours, theirs):
        written.append("loss_curve.png")
    else:
        print("matplotlib is not installed: no loss_curve.png (pip install -e '.[examples]')")
    with open(out / "losses.csv", "w", encoding="utf-8") as file:
        file.write("step,lstm_sym" + (",pytorch\n" if theirs else "\n"))
        for k, loss in enumerate(ours.losses):
            pytorch = ""
            if theirs is not None:
                pytorch = "," + (repr(theirs.losses[k]) if k < len(theirs.losses) else "")
            file.write(f"{k},{loss!r}{pytorch}\n")
    model.rnn.save(out / "model.npz")
    model.head.save(out / "head.npz")
    samples = [f"{prompt!r} -> {model.continue_text(corpus, prompt, 60)!r}" for prompt in PROMPTS]
    accuracy = model.accuracy(corpus)
    (out / "samples.txt").write_text("\n".join(samples) + "\n", encoding="utf-8")
    written += ["losses.csv", "samples.txt", "model.npz", "head.npz"]

    first, last = ours.epoch_losses[0], ours.epoch_losses[-1]
    print(
        f"loss (mean per epoch): {first:.4f} (epoch 1) -> {last:.4f} "
        f"(epoch {len(ours.epoch_losses)})"
    )
    print(f"next-character accuracy on the text: {accuracy:.1%}")
    timing = f"time per optimizer step (median): lstm_sym ({config.backend}) "
    timing += f"{_median_ms(ours.seconds_per_step):.1f} ms"
    if theirs is not None:
        timing += f", PyTorch (one thread) {_median_ms(theirs.seconds_per_step):.1f} ms"
    print(timing)
    if theirs is not None:
        n = len(theirs.losses)
        difference = np.abs(np.array(ours.losses[:n]) - np.array(theirs.losses))
        print(
            f"loss curves, lstm_sym vs PyTorch: max |difference| over {n} steps "
            f"{difference.max():.2e} (first 10 steps: {difference[:10].max():.2e})"
            + (f"; {steps} steps with --torch-steps all" if n < steps else "")
        )
    print("samples (greedy continuation):")
    for line in samples:
        print("  " + line)
    print(f"wrote {', '.join(written)} to {out.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_sym.examples.train",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
