"""The cells compute their equations: they match Flax's own cells forward and backward,
the scan matches a Python loop, and the parameter counts match the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlx.models.cells import CELLS, LSTMCell, RecurrentNet, param_count

B, T, X, H = 3, 6, 5, 4
TOL = dict(rtol=2e-5, atol=2e-5)


def _data(seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    xs = jax.random.normal(k[0], (B, T, X))
    w_out = jax.random.normal(k[1], (B, T, H))          # weights a loss puts on every h_t
    h0 = 0.5 * jax.random.normal(k[2], (B, H))
    c0 = 0.5 * jax.random.normal(k[3], (B, H))
    return xs, w_out, h0, c0


def _flax_cell(kind, activation="tanh"):
    """Flax's cell and how our (V, W, b) map onto its parameters."""
    if kind == "lstm":
        cell = nnx.OptimizedLSTMCell(X, H, rngs=nnx.Rngs(0))   # gate order (i, f, g, o)
        names = {"V": cell.dense_i.kernel, "W": cell.dense_h.kernel, "b": cell.dense_h.bias}
    elif kind == "gru":
        cell = nnx.GRUCell(X, H, rngs=nnx.Rngs(0))             # gate order (r, z, n)
        names = {"V": cell.dense_i.kernel, "W": cell.dense_h.kernel, "b": cell.dense_i.bias}
    else:
        act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[activation]
        cell = nnx.SimpleCell(X, H, activation_fn=act, rngs=nnx.Rngs(0))
        names = {"V": cell.dense_i.kernel, "W": cell.dense_h.kernel, "b": cell.dense_i.bias}
    return cell, names


def _random_params(kind, seed=1):
    # Random biases too, so a misplaced bias cannot hide behind zeros.
    g = CELLS[kind].num_gates
    k = jax.random.split(jax.random.key(seed), 3)
    return {"V": 0.5 * jax.random.normal(k[0], (X, g * H)),
            "W": 0.5 * jax.random.normal(k[1], (H, g * H)),
            "b": 0.5 * jax.random.normal(k[2], (g * H,))}


def _ours(kind, activation):
    kwargs = {"activation": activation} if kind == "rnn" else {}
    return CELLS[kind](X, H, rngs=nnx.Rngs(0), **kwargs)


def _loss(carry, hs, w_out):
    # Touches every emitted h_t and every part of the final carry.
    return jnp.sum(jnp.tanh(hs) * w_out) + sum(jnp.sum(c ** 2) for c in carry)


def _carry0(kind, h0, c0):
    return (c0, h0) if kind == "lstm" else (h0,)


# The LSTM's backward has four forms (`SMALL_STEP_GATES` and `GATE_AXIS_MIN_HIDDEN` in
# dlx/models/cells.py): these shapes are small, so "lstm" takes the one whose forward stores
# the coefficients, with the flat loop; "-gates" forces the form larger steps take, "-axis"
# the CPU's loop over a gate axis that wider layers take. The GRU's has two: "gru" (flat)
# and "gru-axis".
CASES = [("lstm", "tanh"), ("lstm-axis", "tanh"), ("lstm-gates", "tanh"), ("lstm-gates-axis", "tanh"),
         ("gru", "tanh"), ("gru-axis", "tanh"), ("rnn", "tanh"), ("rnn", "relu")]
FORMS = ["lstm", "lstm-axis", "lstm-gates", "lstm-gates-axis", "gru", "gru-axis", "rnn"]


@pytest.fixture
def cell_form(monkeypatch):
    def use(kind):
        if "-gates" in kind:
            monkeypatch.setattr("dlx.models.cells.SMALL_STEP_GATES", 0)
        if kind.endswith("-axis"):
            monkeypatch.setattr("dlx.models.cells.GATE_AXIS_MIN_HIDDEN", 0)
        return kind.split("-")[0]
    return use


@pytest.mark.parametrize("kind,activation", CASES)
def test_cell_matches_flax_forward_and_gradients(kind, activation, cell_form):
    kind = cell_form(kind)
    xs, w_out, h0, c0 = _data()
    params = _random_params(kind)

    def ours(params, xs, carry0):
        cell = _ours(kind, activation)
        for name, value in params.items():
            getattr(cell, name)[...] = value
        return _loss(*cell(xs, carry0), w_out)

    def theirs(params, xs, carry0):
        cell, names = _flax_cell(kind, activation)
        for name, value in params.items():
            names[name][...] = value
        carry = carry0 if kind == "lstm" else carry0[0]
        hs = []
        for t in range(T):
            carry, h = cell(carry, xs[:, t])
            hs.append(h)
        carry = carry if kind == "lstm" else (carry,)
        return _loss(carry, jnp.stack(hs, axis=1), w_out)

    carry0 = _carry0(kind, h0, c0)
    # jit both: one compile is cheaper than Flax's eager op-by-op loop under grad.
    v_ours, g_ours = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2)))(params, xs, carry0)
    v_theirs, g_theirs = jax.jit(jax.value_and_grad(theirs, argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(v_ours, v_theirs, **TOL)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs)):
        np.testing.assert_allclose(a, b, **TOL)


def test_param_counts_follow_the_formulas():
    for kind in CELLS:
        cell = CELLS[kind](X, H, rngs=nnx.Rngs(0))
        counted = sum(p.size for p in jax.tree.leaves(nnx.state(cell, nnx.Param)))
        assert counted == param_count(kind, X, H)
    assert param_count("rnn", X, H) == H * (X + H + 1)
    assert param_count("gru", 64, 256) < param_count("lstm", 64, 256)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="reads the LAPACK calls of XLA:CPU's program")
def test_seeded_init_makes_no_batched_lapack_call():
    """Several batched QRs in one XLA:CPU program can deadlock (each waits on the intra-op
    pool the others occupy): a compare-rnn run with --seeds 3 hung at a cell's first step,
    and a vmapped LSTM init program hung within 100 calls. `seeded` (what fit
    and bench use for --seeds) initialises the runs one after another: every QR is a single matrix."""
    import re

    from dlx.train import Trainer, seeded

    def init(key):  # two stacked LSTMs: 8 orthogonal gate blocks, as compare-rnn --layers 2
        return nnx.state(RecurrentNet("lstm", X, H, X, layers=2, rngs=nnx.Rngs(key)), nnx.Param)

    seeded_init, _ = seeded(Trainer(init=init, step=lambda s, i, d: (s, {})), 3)
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, 3)                                         # what seeded splits
    compiled = jax.jit(seeded_init).lower(key).compile()
    hlo = compiled.as_text()
    batch_dims = re.findall(r'custom_call_target="lapack_s(?:geqrf|orgqr)[^\n]*num_batch_dims="(\d+)"', hlo)
    assert len(batch_dims) == 16 and set(batch_dims) == {"0"}, batch_dims    # 8 QRs, unbatched
    # The same numbers as each seed's own init (what vmap gave too; not run here: it can hang).
    stacked, one = compiled(key), jax.jit(init)(keys[1])
    assert all(np.array_equal(a[1], b) for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(one)))
    W = np.asarray(stacked["cells"][0]["W"][...])                                # (seeds, H, 4H)
    np.testing.assert_allclose(W[1][:, :H].T @ W[1][:, :H], np.eye(H), atol=1e-5)
    assert not np.allclose(W[0], W[1])


def test_forget_bias_is_applied():
    cell = LSTMCell(X, H, rngs=nnx.Rngs(0), forget_bias=1.0)
    b = np.asarray(cell.b[...]).reshape(4, H)          # rows: i, f, N, o
    np.testing.assert_array_equal(b, np.eye(4)[1][:, None] * np.ones((4, H)))
    # With zero weights every forget gate sits at sigmoid(forget_bias).
    cell.V[...] = jnp.zeros_like(cell.V[...])
    cell.W[...] = jnp.zeros_like(cell.W[...])
    _, _, gates = cell(jnp.ones((B, T, X)), return_gates=True)
    np.testing.assert_allclose(gates["forget"], jax.nn.sigmoid(1.0) * np.ones(T), rtol=1e-6)
    np.testing.assert_allclose(gates["input"], 0.5 * np.ones(T), rtol=1e-6)
    assert np.all(np.asarray(LSTMCell(X, H, rngs=nnx.Rngs(0), forget_bias=0.0).b[...]) == 0)


def test_gate_statistics_path_computes_the_same_states():
    xs, _, h0, c0 = _data(2)
    cell = LSTMCell(X, H, rngs=nnx.Rngs(0))
    carry, hs = cell(xs, (c0, h0))
    carry_g, hs_g, gates = cell(xs, (c0, h0), return_gates=True)
    np.testing.assert_allclose(hs, hs_g, **TOL)
    final_norm = jnp.linalg.norm(carry_g[0], axis=-1).mean()   # mean over the batch of ||c_T||
    np.testing.assert_allclose(gates["cell_norm"][-1], final_norm, **TOL)
    assert set(gates) == {"forget", "input", "output", "cell_norm"}


@pytest.mark.parametrize("kind", FORMS)
def test_scan_equals_python_loop_and_perturbation_gradient_is_dloss_dh(kind, cell_form):
    kind = cell_form(kind)
    xs, w_out, h0, c0 = _data(3)
    cell = _ours(kind, "tanh")
    carry0 = _carry0(kind, h0, c0)
    u = jnp.arange(1.0, H + 1)

    def loss(carry, hs):
        return jnp.sum(jnp.sin(hs) * w_out) + jnp.sum(carry[-1] * u)

    def scanned(delta):
        return loss(*cell(xs, carry0, hidden_perturbation=delta))

    def unrolled(delta):
        carry, xproj, hs = carry0, cell.project(xs), []
        for t in range(T):
            carry, h = cell.step(carry, xproj[:, t])
            h = h + delta[:, t]
            carry = carry[:-1] + (h,)
            hs.append(h)
        return loss(carry, jnp.stack(hs, axis=1))

    zeros = jnp.zeros((B, T, H))
    value, g = jax.jit(jax.value_and_grad(scanned))(zeros)
    value_loop, g_loop = jax.jit(jax.value_and_grad(unrolled))(zeros)
    np.testing.assert_allclose(value, value_loop, **TOL)
    np.testing.assert_allclose(g, g_loop, **TOL)
    # The last h_t feeds nothing but the loss: dL/dh_T = cos(h_T) * w + u.
    _, hs = cell(xs, carry0)
    np.testing.assert_allclose(g[:, -1], jnp.cos(hs[:, -1]) * w_out[:, -1] + u, **TOL)
    # A perturbation moves the states by exactly itself at the step it is added.
    delta = zeros.at[:, 2].set(0.1)
    _, hs_d = cell(xs, carry0, hidden_perturbation=delta)
    np.testing.assert_allclose(hs_d[:, :2], hs[:, :2], **TOL)
    np.testing.assert_allclose(hs_d[:, 2], hs[:, 2] + 0.1, **TOL)
    assert not np.allclose(hs_d[:, 3:], hs[:, 3:])


def test_recurrent_net_shapes_and_stepwise_sampling():
    vocab, steps = 11, 7
    net = RecurrentNet("lstm", 8, H, vocab, layers=2, vocab=vocab, embed=6, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(0), (B, steps), 0, vocab)
    graphdef, weights = nnx.split(net)

    @jax.jit
    def run(tokens):
        net = nnx.merge(graphdef, weights)
        state, stepped = net.init_state(B), []
        for t in range(steps):                   # the sampling path, one token at a time
            state, out = net.step_tokens(state, tokens[:, t])
            stepped.append(out)
        _, hs = net.hidden_states(tokens)
        return net(tokens), net(tokens, last_only=True), jnp.stack(stepped, axis=1), hs

    logits, last, stepped, hs = run(tokens)
    assert logits.shape == (B, steps, vocab) and hs.shape == (B, steps, H)
    np.testing.assert_allclose(last, logits[:, -1], **TOL)
    np.testing.assert_allclose(stepped, logits, **TOL)


def test_recurrent_net_on_float_inputs():
    net = RecurrentNet("rnn", X, H, 10, rngs=nnx.Rngs(0), activation="relu")
    assert net(jnp.ones((B, T, X)), last_only=True).shape == (B, 10)
    with pytest.raises(ValueError, match="unknown cell"):
        RecurrentNet("transformer", X, H, 10, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("kind", ["lstm", "lstm-gates", "gru", "rnn"])
@pytest.mark.parametrize("vocab", [11, 40])   # fewer table rows than tokens (folded), more
def test_token_inputs_equal_embedding_then_projection(vocab, kind, cell_form):
    # The net projects tokens through the table embedding @ V + b when that is smaller than
    # the batch; its outputs and every gradient, the hidden perturbation's included, must
    # equal embedding, then projection, for every cell and both LSTM forms.
    kind = cell_form(kind)
    steps = 7
    net = RecurrentNet(kind, 6, H, vocab, vocab=vocab, embed=6, rngs=nnx.Rngs(0))
    graphdef, weights = nnx.split(net)
    k = jax.random.split(jax.random.key(1), 4)
    tokens = jax.random.randint(k[0], (B, steps), 0, vocab)
    w = jax.random.normal(k[1], (B, steps, vocab))
    # Random biases, so that a bias gradient taken from the wrong rows cannot hide.
    weights = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(k[2], x.shape), weights)
    delta = 0.1 * jax.random.normal(k[3], (B, steps, H))

    def loss(weights, delta, fold):
        net = nnx.merge(graphdef, weights)
        if fold:
            return jnp.sum(net(tokens, hidden_perturbation=delta) * w)
        cell = net.cells[0]
        _, hs = cell.scan_time_major(net.embed(tokens.T), hidden_perturbation=jnp.swapaxes(delta, 0, 1))
        return jnp.sum(jnp.swapaxes(net.head(hs), 0, 1) * w)

    (a, ga), (b, gb) = (jax.value_and_grad(loss, argnums=(0, 1))(weights, delta, fold) for fold in (True, False))
    np.testing.assert_allclose(a, b, **TOL)
    for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(x, y, **TOL)


@pytest.mark.parametrize("kind", ["lstm", "lstm-gates", "gru", "rnn"])
def test_unrolled_time_loop_equals_rolled(kind, cell_form):
    kind = cell_form(kind)
    # Sequences of UNROLL_MIN_STEPS or more run with the loop unrolled (66: not a multiple
    # of the unroll); values and gradients must not change.
    from dlx.models.cells import UNROLL_MIN_STEPS
    steps = UNROLL_MIN_STEPS + 2
    xs = jax.random.normal(jax.random.key(3), (2, steps, X))
    w = jax.random.normal(jax.random.key(4), (2, steps, H))

    def loss(cell):
        carry, hs = cell(xs)
        return jnp.sum(hs * w) + jnp.sum(carry[-1])

    def value_and_grads(unroll):
        cell = CELLS[kind](X, H, rngs=nnx.Rngs(0), unroll=unroll)
        return nnx.value_and_grad(loss)(cell)

    (a, ga), (b, gb) = value_and_grads(None), value_and_grads(1)
    np.testing.assert_allclose(a, b, **TOL)
    for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(x, y, **TOL)


def test_rational_tanh_is_as_accurate_as_jnp_tanh_and_has_its_derivative():
    # On the CPU every cell computes tanh as a rational function (speed: see `_tanh`); other
    # backends use their own tanh. Against tanh in float64 its error must not exceed
    # jnp.tanh's, at any input, large or not finite.
    from dlx.models.cells import _tanh
    lowered = {p: jax.export.export(jax.jit(_tanh), platforms=[p])(jnp.zeros(3)).mlir_module() for p in ("cpu", "cuda")}
    assert "stablehlo.tanh" not in lowered["cpu"] and "stablehlo.divide" in lowered["cpu"]
    assert "stablehlo.tanh" in lowered["cuda"] and "stablehlo.divide" not in lowered["cuda"]
    x = np.concatenate([np.linspace(-12, 12, 400_001), [-1e30, -50, -7.9, 0.0, 1e-8, 7.9, 50, 1e30]]).astype(np.float32)
    ref = np.tanh(x.astype(np.float64))
    ours = np.asarray(jax.jit(_tanh)(x), np.float64)
    err, err_jnp = np.abs(ours - ref), np.abs(np.asarray(jnp.tanh(x), np.float64) - ref)
    assert err.max() <= max(err_jnp.max(), 3e-7)
    assert np.abs(ours).max() <= 1.0               # sigmoid gates 0.5 tanh(x/2) + 0.5 stay in [0, 1]
    np.testing.assert_array_equal(np.asarray(_tanh(-x)), -np.asarray(_tanh(x)))     # odd
    assert _tanh(jnp.float32(0.0)) == 0.0
    np.testing.assert_allclose(np.asarray(_tanh(jnp.array([np.inf, -np.inf]))), [1.0, -1.0], rtol=3e-7)
    assert np.isnan(_tanh(jnp.float32(np.nan)))
    # The derivative is 1 - tanh^2, as jnp.tanh's (not the derivative of the approximation).
    g = jax.vmap(jax.grad(_tanh))(x[:1000])
    y = _tanh(x[:1000])
    np.testing.assert_allclose(g, 1.0 - y * y, rtol=1e-6, atol=1e-7)
