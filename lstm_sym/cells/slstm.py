"""sLSTM from xLSTM (Beck et al., 2024, "xLSTM: Extended Long Short-Term Memory", section 2.2,
the stabilized sLSTM): an exponential input gate, a normalizer state and a stabilizer state.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` (a full recurrent matrix) for each gate g, and
``g_pre = g_event + g_hidden`` (the paper's i~, f~, z~, o~):

    candidate  = tanh(candidate_pre)                        z_t = tanh(z~_t)
    output     = sigmoid(output_pre)                        o_t = sigma(o~_t)
    log_forget = logsigmoid(forget_pre)                     log f_t, f_t = sigma(f~_t)
    forget_path = log_forget + stabilizer_prev              log f_t + m_{t-1}
    stabilizer = Max(forget_path, input_pre)                m_t = max(log f_t + m_{t-1}, log i_t)
    input_stabilized  = exp(input_pre - stabilizer)         i'_t = exp(log i_t - m_t)
    forget_stabilized = exp(forget_path - stabilizer)       f'_t = exp(log f_t + m_{t-1} - m_t)
    cell       = forget_stabilized * cell_prev + input_stabilized * candidate
    normalizer = forget_stabilized * normalizer_prev + input_stabilized
    hidden     = output * cell / normalizer                 h_t = o_t c_t / n_t

The input gate is exponential, i_t = exp(i~_t) (log i_t = i~_t); the forget gate is the
sigmoid, the paper's default (it allows exp too). Both exponents are at most 0 by construction
(x - max(x, y) <= 0, exactly in floating point too, since m_t is one of the two values), so
neither exp can overflow. The stabilized cell is the same function of the inputs as the
unstabilized recurrence c~_t = f_t c~_{t-1} + i_t z_t, n~_t = f_t n~_{t-1} + i_t,
h_t = o_t c~_t / n~_t: by induction c_t = exp(-m_t) c~_t and n_t = exp(-m_t) n~_t (given
c~_0 = exp(m_0) c_0, n~_0 = exp(m_0) n_0), so the factor exp(-m_t) cancels in c_t / n_t and h_t
does not depend on m at all. The gradient of a loss on the outputs is therefore the
unstabilized form's; ``tests/kernels/test_slstm.py`` checks both at 40 digits.

Max's derivative is Heaviside(a - b), SymPy's Heaviside(0) = 1/2 at a tie (torch.maximum's rule);
through the outputs m has no effect, so the tie rule changes only the gradients of the final
stabilizer m_last's cotangent, never those of a loss on the outputs.

Four states in this order: hidden h (the outputs, the recurrent state), cell c, normalizer n,
stabilizer m; ``outputs, (h_last, c_last, n_last, m_last), cache = slstm.forward(parameters,
events, h0=None, c0=None, n0=None, m0=None)``, all initial states zeros by default, as the
official implementation (``xlstm`` 2.0.6, ``sLSTMCell``'s zero state, m_0 = 0 included). That
implementation starts the stabilizer at m_1 = i~_1 when every n_{t-1} is 0 (its vanilla
``slstm_forward_pointwise``) and clamps i', f' to 1; the equations here have no such branch:
from zero states h_1 is the same (c_0 = n_0 = 0), m_1 = max(log f_1, i~_1) instead of i~_1, and
with n_0 = 0 an input pre-activation below log f_1 - 700 (float64; - 87 in float32) at the
first step underflows n_1 to 0 (h_1 = 0/0), which the official branch avoids.

Gates are stacked in the official order (i, f, z, o) = (input, forget, candidate, output).
"""

from sympy import Max, exp, tanh

from ..functions import logsigmoid, sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("input", "forget", "candidate", "output")
event, hidden = gate_symbols(GATES)
pre = {g: getattr(event, g) + getattr(hidden, g) for g in GATES}

hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
cell_prev, cell = real_symbol("cell_prev"), real_symbol("cell")
normalizer_prev, normalizer = real_symbol("normalizer_prev"), real_symbol("normalizer")
stabilizer_prev, stabilizer = real_symbol("stabilizer_prev"), real_symbol("stabilizer")
candidate, output = real_symbol("candidate"), real_symbol("output")
log_forget, forget_path = real_symbol("log_forget"), real_symbol("forget_path")
input_stabilized = real_symbol("input_stabilized")
forget_stabilized = real_symbol("forget_stabilized")

SPEC = CellSpec(
    name="slstm",
    title="sLSTM (xLSTM, Beck et al. 2024), stabilized",
    description=__doc__,
    source="lstm_sym/cells/slstm.py",
    gates=GATES,
    states=(
        State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),
        State(name="cell", short="c", prev=cell_prev, new=cell),
        State(name="normalizer", short="n", prev=normalizer_prev, new=normalizer, positive=True),
        State(name="stabilizer", short="m", prev=stabilizer_prev, new=stabilizer),
    ),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (candidate, tanh(pre["candidate"])),
        (output, sigmoid(pre["output"])),
        (log_forget, logsigmoid(pre["forget"])),
        (forget_path, log_forget + stabilizer_prev),
        (stabilizer, Max(forget_path, pre["input"])),
        (input_stabilized, exp(pre["input"] - stabilizer)),
        (forget_stabilized, exp(forget_path - stabilizer)),
        (cell, forget_stabilized * cell_prev + input_stabilized * candidate),
        (normalizer, forget_stabilized * normalizer_prev + input_stabilized),
        (hidden_new, output * cell / normalizer),
    ),
    stabilizer={"stabilizer": ("cell", "normalizer")},
    letters={
        "candidate": "z",
        "log_forget": r"\log f",
        "forget_path": r"\lambda",
        "input_stabilized": "i'",
        "forget_stabilized": "f'",
        "stabilizer": r"\mu",
    },
)
