"""Training with lstm_sym.torch.RNN as PyTorch trains: torch.compile(fullgraph=True) gives the
eager step's numbers, and DistributedDataParallel over 2 processes gives one process's parameters
(float64, 1e-12). Each also runs a model of torch's own (the eager lstm loop under compile, since
Dynamo refuses nn.LSTM with fullgraph=True; nn.LSTM under DDP), which checks the harness."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require_module, require_tool
from tests.support import relative_error, run_script

torch = require_module("torch")


def _model(kind: str):
    torch.manual_seed(0)
    if kind == "reference lstm":  # nn.LSTM itself does not compile with fullgraph=True
        from lstm_sym.torch.reference import ReferenceRNN

        return ReferenceRNN("lstm", 3, 4).double()
    from lstm_sym.torch import RNN

    return RNN(kind, 3, 4).double()


def _step(model, forward, events):
    model.zero_grad()
    outputs, finals = forward(events)
    h_n = finals[0] if isinstance(finals, tuple) else finals
    (outputs.pow(2).sum() + h_n.sum()).backward()
    return [outputs.detach(), *(p.grad.clone() for p in model.parameters())]


# inductor imports torch.utils.mkldnn, whose torch.jit.script_method warns (torch's own code)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("kind", ["reference lstm", "peephole_lstm", "gru_cho"])
def test_a_compiled_fullgraph_training_step_equals_the_eager_one(kind):
    require_tool("g++", "torch.compile's inductor needs a C++ compiler (scripts/test installs it)")
    torch._dynamo.reset()
    model = _model(kind)
    events = torch.randn(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eager = _step(model, model, events)
    compiled = _step(model, torch.compile(model, fullgraph=True), events)
    assert len(compiled) == len(eager) > 1
    for got, want in zip(compiled, eager, strict=True):
        assert relative_error(got.numpy(), want.numpy()) <= 1e-12
    if kind != "reference lstm":
        # evaluation without gradients: the infer operator inside the compiled graph
        with torch.no_grad():
            evaluated = torch.compile(model, fullgraph=True)(events)[0]
        assert torch.equal(evaluated, eager[0])


@pytest.mark.parametrize("kind", ["nn.LSTM", "peephole_lstm"])
def test_ddp_over_two_processes_gives_one_process_s_parameters_after_three_steps(kind):
    result = run_script("ddp_train.py", kind, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["parameters_moved"] > 1e-3  # the optimizer did change them
    assert report["vs_one_process"] <= 1e-12, report
    assert report["between_ranks"] <= 1e-12, report
