"""Sequence tasks for recurrent models, and the Trainer that fits a `RecurrentNet` to one.

Shared by `dlx train-lstm` and `dlx compare-rnn`. A task is data plus pure functions:

    text     character-level language model on a corpus (train / validation split by
             position, the last 10% held out); metric val_bpc.
    adding   Bai, Kolter & Koltun (2018): x (T, 2) = values U[0, 1] and a marker channel
             with exactly two 1s (one in each half); target the sum of the two marked
             values. MSE; always predicting 1 scores 1/6 (the variance of U[0,1]+U[0,1]).
    copy     Arjovsky, Shah & Bengio (2016): 10 symbols from {1..8}, T-1 blanks (0), the
             delimiter 9, then 10 blanks during which the model must output the 10
             symbols; length T + 20, targets blank elsewhere. Cross-entropy over all
             positions; the memoryless baseline (blanks, then uniform guesses over 8
             symbols) scores 10 ln 8 / (T + 20). `accuracy` counts recalled symbols.
    mnist1d  Greydanus (2020): the 40 values of a signal, one per step; classify from the
             last hidden state. Test accuracy; chance 0.1, a GRU reaches ~91% (paper).

Batches are generated on the device from `jax.random.fold_in(key, step)` (or drawn by
`epoch_batch` for mnist1d), so the step stays pure and resumed runs see the same data.
Evaluation uses a FIXED held-out set: the validation split, a batch drawn from a fixed
key (independent of --seed), or the mnist1d test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx.errors import UsageError
from dlx.models.cells import RecurrentNet
from dlx.train import Trainer, epoch_batch, refuse_impossible_sizes

TASKS = ("text", "adding", "copy", "mnist1d")
CELL_KINDS = ("lstm", "gru", "rnn")
DEFAULT_SEQ_LEN = {"text": 128, "adding": 100, "copy": 20, "mnist1d": 40}

VAL_FRACTION = 0.1          # text: the last 10% of the corpus is the validation split
EVAL_EXAMPLES = 1000        # adding / copy: size of the fixed evaluation batch
EVAL_KEY = 1_000_003        # ... drawn from this key, whatever --seed is
EVAL_CHUNK = 128            # text: validation windows per forward pass (bounds memory)
COPY_SYMBOLS, COPY_N = 8, 10  # copy: alphabet {1..8}, 10 symbols to remember
COPY_BLANK, COPY_DELIM = 0, 9


@dataclass
class SeqTask:
    """One sequence task. `sample`, `batch`, `loss` and `metrics` are pure JAX.

    sample(key, data, batch_size) -> (x, y): a fresh training batch.
    batch(key, step, data, batch_size) -> (x, y): the batch of training step `step`
        (what the Trainer calls: `sample(fold_in(key, step))`, or an epoch batch).
    loss(out, y) -> (scalar loss, {name: scalar}): out is the model's output
        ((B, T, C) per step, or (B, C) with `last_only`).
    metrics(apply_fn, data) -> {name: scalar}: on the fixed held-out set; traceable.
    evaluate(apply_fn, data) -> {name: float}: the same as host floats.
    """

    name: str
    kind: str                       # "lm" | "regression" | "copy" | "classify"
    in_features: int                # input features, or the default embedding size for tokens
    out_features: int
    seq_len: int                    # the task's T (copy: the delay; the input is T + 20 long)
    length: int                     # steps the model actually runs
    metric: str                     # headline metric: val_bpc | mse | accuracy
    baseline: float | None          # what a model with no memory scores on `metric` (or loss)
    data: Any
    sample: Callable
    loss: Callable
    metrics: Callable
    last_only: bool = False         # read out the last hidden state only
    vocab: int | None = None        # token inputs (embedded); None: float inputs
    chars: str | None = None        # text: id -> character
    batch: Callable | None = None
    lower_is_better: bool = True

    def __post_init__(self):
        if self.batch is None:
            sample = self.sample
            self.batch = lambda key, step, data, b: sample(jax.random.fold_in(key, step), data, b)

    def evaluate(self, apply_fn, data=None) -> dict:
        data = self.data if data is None else data
        res = jax.jit(lambda d: self.metrics(apply_fn, d))(data)
        return {k: float(v) for k, v in res.items()}

    def describe(self) -> dict:
        d = {"task": self.name, "seq_len": self.seq_len, "length": self.length, "metric": self.metric,
             "baseline": self.baseline}
        if self.vocab is not None:
            d["vocab_size"] = self.vocab
        return d

    # text only ------------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# ---- losses --------------------------------------------------------------------------

def _xent(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _lm_loss(out, y):
    loss = _xent(out, y).mean()
    return loss, {"bpc": loss / math.log(2)}


def _mse_loss(out, y):
    loss = jnp.mean((out[..., 0] - y) ** 2)
    return loss, {}


def _copy_loss(out, y):
    loss = _xent(out, y).mean()
    recalled = jnp.argmax(out[:, -COPY_N:], -1) == y[:, -COPY_N:]
    return loss, {"accuracy": recalled.mean()}


def _classify_loss(out, y):
    loss = _xent(out, y).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(out, -1) == y)}


# ---- text ----------------------------------------------------------------------------

def _text_task(seq_len: int, corpus, chars: str | None) -> SeqTask:
    from dlx.data import builtin_corpus

    corpus = builtin_corpus() if corpus is None else corpus
    text = corpus.text
    T = seq_len
    need = 2 * (T + 1)  # one training and one validation sequence, each with its next char
    if len(text) < need:
        raise UsageError(f"--data {corpus.source}: too short, only {len(text)} characters; --seq-len {T} needs at least "
                         f"{need} (one training and one validation sequence)")
    if chars is None:
        chars = "".join(sorted(set(text)))
    else:
        missing = sorted(set(text) - set(chars))
        if missing:
            raise UsageError(f"the text has characters outside the vocabulary: {''.join(missing[:20])!r}")
    index = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((index[c] for c in text), np.int32, len(text))
    n_val = max(int(len(ids) * VAL_FRACTION), T + 1)
    train, val = ids[:-n_val], ids[-n_val:]

    # Validation: consecutive non-overlapping windows, each starting from a zero state,
    # padded to whole chunks of EVAL_CHUNK windows with weight 0.
    n_win = (len(val) - 1) // T
    vx = val[:n_win * T].reshape(n_win, T)
    vy = val[1:n_win * T + 1].reshape(n_win, T)
    chunk = min(EVAL_CHUNK, n_win)
    pad = -n_win % chunk
    w = np.concatenate([np.ones(n_win, np.float32), np.zeros(pad, np.float32)])
    vx, vy = np.pad(vx, ((0, pad), (0, 0))), np.pad(vy, ((0, pad), (0, 0)))
    data = {"train": train, "val_x": vx.reshape(-1, chunk, T), "val_y": vy.reshape(-1, chunk, T),
            "val_w": w.reshape(-1, chunk)}
    n_train = len(train)

    def sample(key, data, batch_size):
        starts = jax.random.randint(key, (batch_size, 1), 0, n_train - T)
        window = jnp.take(data["train"], starts + jnp.arange(T + 1), axis=0)  # (B, T+1)
        return window[:, :-1], window[:, 1:]

    def metrics(apply_fn, data):
        def one(chunk):
            x, y, w = chunk
            per = _xent(apply_fn(x), y).mean(-1)             # (C,) nats per char, per window
            return jnp.sum(per * w)
        total = jax.lax.map(one, (data["val_x"], data["val_y"], data["val_w"])).sum()
        loss = total / data["val_w"].sum()
        return {"val_loss": loss, "val_bpc": loss / math.log(2), "perplexity": jnp.exp(loss)}

    V = len(chars)
    return SeqTask("text", "lm", in_features=V, out_features=V, seq_len=T, length=T, metric="val_bpc",
                   baseline=math.log2(V), data=data, sample=sample, loss=_lm_loss, metrics=metrics,
                   vocab=V, chars=chars)


# ---- adding ----------------------------------------------------------------------------

def _eval_batch(make_batch, T: int):
    """The fixed evaluation batch, drawn by one compiled program (cached with the others)
    rather than op by op: eagerly, the adding batch's dozen random and array ops cost
    compare-rnn 0.25 s of start-up. The values are the same (bits and exact arithmetic)."""
    return jax.jit(make_batch, static_argnums=(1, 2))(jax.random.PRNGKey(EVAL_KEY), EVAL_EXAMPLES, T)


def adding_batch(key, batch_size: int, T: int):
    """x (B, T, 2): values U[0,1] and markers (one 1 in each half); y (B,) their sum."""
    kv, k1, k2 = jax.random.split(key, 3)
    values = jax.random.uniform(kv, (batch_size, T))
    half = T // 2
    first = jax.random.randint(k1, (batch_size,), 0, half)
    second = jax.random.randint(k2, (batch_size,), half, T)
    t = jnp.arange(T)
    markers = ((t == first[:, None]) | (t == second[:, None])).astype(jnp.float32)
    return jnp.stack([values, markers], -1), jnp.sum(values * markers, -1)


def _adding_task(T: int) -> SeqTask:
    if T < 2:
        raise UsageError(f"--seq-len must be at least 2 for the adding task (one marker per half), got {T}")
    x_eval, y_eval = _eval_batch(adding_batch, T)

    def sample(key, data, batch_size):
        return adding_batch(key, batch_size, T)

    def metrics(apply_fn, data):
        return {"mse": _mse_loss(apply_fn(data["x"]), data["y"])[0]}

    return SeqTask("adding", "regression", in_features=2, out_features=1, seq_len=T, length=T, metric="mse",
                   baseline=1 / 6, data={"x": x_eval, "y": y_eval}, sample=sample, loss=_mse_loss,
                   metrics=metrics, last_only=True)


# ---- copy ------------------------------------------------------------------------------

def copy_batch(key, batch_size: int, T: int):
    """Tokens x (B, T+20) and targets y (B, T+20) of the copy task (layout in the module doc)."""
    symbols = jax.random.randint(key, (batch_size, COPY_N), 1, COPY_SYMBOLS + 1)
    blanks = lambda n: jnp.full((batch_size, n), COPY_BLANK, jnp.int32)  # noqa: E731
    delim = jnp.full((batch_size, 1), COPY_DELIM, jnp.int32)
    x = jnp.concatenate([symbols, blanks(T - 1), delim, blanks(COPY_N)], axis=1)
    y = jnp.concatenate([blanks(T + COPY_N), symbols], axis=1)
    return x, y


def copy_baseline(T: int) -> float:
    """Cross-entropy of the best memoryless model: blanks are certain, each of the 10
    recalled symbols a uniform guess over 8, averaged over all T + 20 positions."""
    return COPY_N * math.log(COPY_SYMBOLS) / (T + 2 * COPY_N)


def _copy_task(T: int) -> SeqTask:
    x_eval, y_eval = _eval_batch(copy_batch, T)

    def sample(key, data, batch_size):
        return copy_batch(key, batch_size, T)

    def metrics(apply_fn, data):
        loss, m = _copy_loss(apply_fn(data["x"]), data["y"])
        return {"loss": loss, "accuracy": m["accuracy"]}

    return SeqTask("copy", "copy", in_features=COPY_DELIM + 1, out_features=COPY_SYMBOLS + 1, seq_len=T,
                   length=T + 2 * COPY_N, metric="accuracy", baseline=copy_baseline(T),
                   data={"x": x_eval, "y": y_eval}, sample=sample, loss=_copy_loss, metrics=metrics,
                   vocab=COPY_DELIM + 1, lower_is_better=False)


# ---- mnist1d ---------------------------------------------------------------------------

def _mnist1d_task() -> SeqTask:
    from dlx.data import mnist1d

    d = mnist1d()
    data = {"x": d.x_train, "y": d.y_train, "x_test": d.x_test, "y_test": d.y_test}  # x (N, 40, 1)
    n = len(d.y_train)

    def sample(key, data, batch_size):
        idx = jax.random.randint(key, (batch_size,), 0, n)
        return data["x"][idx], data["y"][idx]

    def batch(key, step, data, batch_size):
        idx = epoch_batch(key, step, n, batch_size)
        return data["x"][idx], data["y"][idx]

    def metrics(apply_fn, data):
        loss, m = _classify_loss(apply_fn(data["x_test"]), data["y_test"])
        return {"test_loss": loss, "accuracy": m["accuracy"]}

    return SeqTask("mnist1d", "classify", in_features=1, out_features=d.classes, seq_len=d.shape[0],
                   length=d.shape[0], metric="accuracy", baseline=1 / d.classes, data=data, sample=sample,
                   loss=_classify_loss, metrics=metrics, last_only=True, batch=batch, lower_is_better=False)


def make_task(name: str, *, seq_len: int | None = None, corpus=None, vocab: str | None = None) -> SeqTask:
    """The task `name` at sequence length `seq_len` (None: DEFAULT_SEQ_LEN). `corpus`
    (a dlx.data.Corpus; default the built-in one) and `vocab` (the id -> char string,
    e.g. a saved run's) apply to text only. Raises UsageError on bad input."""
    if name not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}; got {name!r}")
    if seq_len is None:
        seq_len = DEFAULT_SEQ_LEN[name]
    if not isinstance(seq_len, int) or seq_len < 1:
        raise UsageError(f"--seq-len must be a positive integer, got {seq_len}")
    if name == "text":
        return _text_task(seq_len, corpus, vocab)
    if name == "adding":
        return _adding_task(seq_len)
    if name == "copy":
        return _copy_task(seq_len)
    if seq_len != DEFAULT_SEQ_LEN["mnist1d"]:
        raise UsageError(f"mnist1d signals have {DEFAULT_SEQ_LEN['mnist1d']} steps; --seq-len {seq_len} does not apply")
    return _mnist1d_task()


# ---- the model and its Trainer ---------------------------------------------------------

def make_model(task: SeqTask, *, cell: str, hidden: int, layers: int = 1, embed: int | None = None,
               forget_bias: float = 1.0, rnn_activation: str = "tanh"):
    """make(rngs) -> RecurrentNet for `task`. Token inputs are embedded to `embed`
    features (default: the vocabulary size, as many as a one-hot input)."""
    kwargs = {"lstm": {"forget_bias": forget_bias}, "rnn": {"activation": rnn_activation}}.get(cell, {})
    in_features = embed or task.in_features

    def make(rngs):
        return RecurrentNet(cell, in_features, hidden, task.out_features, layers=layers, vocab=task.vocab,
                            embed=in_features if task.vocab else None, rngs=rngs, **kwargs)
    return make


def apply_fn(graphdef, params, task: SeqTask):
    """x -> the model's output for `task` (per step, or the last step's)."""
    model = nnx.merge(graphdef, params)
    return lambda x: model(x, last_only=task.last_only)


def _is_stacked(state) -> bool:
    # A PRNGKey is uint32[2]; under fit(..., seeds=N) the state carries a leading seed axis.
    return state["key"].ndim == 2


def task_evaluator(task: SeqTask, graphdef) -> Callable[[dict], dict]:
    """evaluate(state) -> {name: float} on the task's held-out set; with a state stacked
    over seeds (fit(..., seeds=N)) -> {name: mean over seeds, name_per_seed: [float per
    seed]}, the form of train-gan's --seeds records."""
    one = lambda params, data: task.metrics(apply_fn(graphdef, params, task), data)  # noqa: E731
    single = jax.jit(one)
    stacked = jax.jit(jax.vmap(one, in_axes=(0, None)))
    data = jax.device_put(task.data)

    def evaluate(state):
        if _is_stacked(state):
            res = jax.device_get(stacked(state["params"], data))
            per_seed = {k: [float(x) for x in np.asarray(v)] for k, v in res.items()}
            return {**{k: float(np.mean(v)) for k, v in per_seed.items()},
                    **{f"{k}_per_seed": v for k, v in per_seed.items()}}
        res = jax.device_get(single(state["params"], data))
        return {k: float(v) for k, v in res.items()}

    return evaluate


def recurrent_trainer(task: SeqTask, *, cell: str, hidden: int, layers: int = 1, embed: int | None = None,
                      lr: float, batch_size: int, clip: float = 1.0, forget_bias: float = 1.0,
                      rnn_activation: str = "tanh", evaluate: bool = True) -> tuple[Trainer, object]:
    """Trainer (Adam after global-norm clipping) for `task` with a RecurrentNet of `cell`.

    State {"params", "opt", "key"}; the step is pure: its batch is
    `task.batch(state["key"], step, data, batch_size)`. Works under fit(..., seeds=N).
    With `evaluate`, Trainer.evaluate is `task_evaluator(task, graphdef)`.
    """
    if cell not in CELL_KINDS:
        raise UsageError(f"--cell must be one of {', '.join(CELL_KINDS)}; got {cell!r}")
    # A step's largest activation, the LSTM's (B, T, 4H) gates, checked from its shape
    # before anything of that size is traced (XLA aborts on sizes past 2^64 bytes).
    refuse_impossible_sizes(jax.ShapeDtypeStruct((batch_size, task.length, 4 * max(hidden, task.in_features)), jnp.float32))
    make = make_model(task, cell=cell, hidden=hidden, layers=layers, embed=embed, forget_bias=forget_bias,
                      rnn_activation=rnn_activation)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: make(nnx.Rngs(0))))
    tx = optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr)) if clip else optax.adam(lr)

    def init(key):
        k_model, k_data = jax.random.split(key)
        _, params = nnx.split(make(nnx.Rngs(k_model)))
        return {"params": params, "opt": tx.init(params), "key": k_data}

    def step(state, i, data):
        x, y = task.batch(state["key"], i, data, batch_size)

        def loss_fn(params):
            return task.loss(apply_fn(graphdef, params, task)(x), y)

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {**state, "params": params, "opt": opt}, {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads)}

    trainer = Trainer(init=init, step=step, data=task.data,
                      evaluate=task_evaluator(task, graphdef) if evaluate else None,
                      examples_per_step=batch_size)
    return trainer, graphdef


# ---- LSTM gate statistics --------------------------------------------------------------

def gate_stats(graphdef, params, x) -> list[dict] | None:
    """Per LSTM layer, a dict of (T,) arrays: mean forget / input / output gate and mean
    cell-state norm ||c_t|| at each time step, for inputs x. None for other cells.
    Traceable (jit / vmap it)."""
    model = nnx.merge(graphdef, params)
    if model.kind != "lstm":
        return None
    xs = jnp.swapaxes(model._features(x), 0, 1)              # (B, T, X)
    out = []
    for cell in model.cells:
        _, xs, stats = cell(xs, return_gates=True)
        out.append(stats)
    return out


def gate_probe_inputs(task: SeqTask, n: int = 64):
    """A fixed batch of held-out inputs on which gate statistics are measured."""
    d = task.data
    if task.name == "text":
        real = np.asarray(d["val_w"]).reshape(-1) > 0            # drop the padding windows
        return np.asarray(d["val_x"]).reshape(-1, task.seq_len)[real][:n]
    if task.name == "mnist1d":
        return d["x_test"][:n]
    return d["x"][:n]
