"""The sequence tasks as the papers define them, and the recurrent Trainer (single and vmapped seeds)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.data import Corpus
from dlx.errors import UsageError
from dlx.tasks.sequence import (COPY_DELIM, EVAL_EXAMPLES, EVAL_KEY, adding_batch, copy_baseline, copy_batch, make_task,
                                recurrent_trainer)


def test_adding_targets_are_the_sum_of_the_two_marked_values():
    T = 30
    x, y = adding_batch(jax.random.PRNGKey(0), 256, T)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == (256, T, 2) and y.shape == (256,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(1) == 2).all()                       # exactly two markers
    assert (markers[:, :T // 2].sum(1) == 1).all()           # one in each half
    np.testing.assert_allclose(y, (values * markers).sum(1), rtol=1e-6)


def test_adding_baseline_is_what_always_predicting_one_scores():
    task = make_task("adding", seq_len=20)
    assert task.baseline == pytest.approx(1 / 6)
    res = task.evaluate(lambda x: jnp.ones((x.shape[0], 1)))
    assert res["mse"] == pytest.approx(1 / 6, abs=0.02)      # 1000 fixed examples


def test_copy_layout():
    T = 7
    x, y = (np.asarray(a) for a in copy_batch(jax.random.PRNGKey(1), 64, T))
    assert x.shape == y.shape == (64, T + 20)
    symbols = x[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (x[:, 10:T + 9] == 0).all()                       # T - 1 blanks
    assert (x[:, T + 9] == COPY_DELIM).all()                 # the recall signal
    assert (x[:, T + 10:] == 0).all()                        # 10 blanks while recalling
    assert (y[:, :T + 10] == 0).all()
    np.testing.assert_array_equal(y[:, -10:], symbols)


@pytest.mark.parametrize("T", [1, 10, 100])
def test_copy_baseline_formula(T):
    assert copy_baseline(T) == pytest.approx(10 * math.log(8) / (T + 20))
    task = make_task("copy", seq_len=T)
    assert task.baseline == pytest.approx(10 * math.log(8) / (T + 20))
    # The memoryless model: sure of the blanks, uniform over the 8 symbols when recalling.
    logits = np.full((T + 20, 9), -1e9, np.float32)
    logits[:T + 10, 0] = 0.0
    logits[T + 10:, 1:] = 0.0
    res = task.evaluate(lambda x: jnp.broadcast_to(logits, (x.shape[0], T + 20, 9)))
    assert res["loss"] == pytest.approx(task.baseline, rel=1e-4)


def test_text_task_windows_and_uniform_model():
    text = "abcdefghij" * 50
    task = make_task("text", seq_len=16, corpus=Corpus(text, "test"))
    assert task.vocab == 10 and task.chars == "abcdefghij"
    x, y = (np.asarray(a) for a in task.sample(jax.random.PRNGKey(0), task.data, 8))
    assert x.shape == y.shape == (8, 16)
    np.testing.assert_array_equal((x + 1) % 10, y)           # y is x shifted by one character
    res = task.evaluate(lambda x: jnp.zeros((*x.shape, 10)))
    assert res["val_loss"] == pytest.approx(math.log(10), rel=1e-5)
    assert res["val_bpc"] == pytest.approx(math.log2(10), rel=1e-5)
    assert res["perplexity"] == pytest.approx(10, rel=1e-4)
    assert task.decode(task.encode("cab")) == "cab"


@pytest.mark.parametrize("name, kw, needle", [
    ("text", {"seq_len": 64, "corpus": Corpus("short text", "f.txt")}, "only 10 characters"),
    ("sine", {"seq_len": 10}, "--task must be one of"),
    ("adding", {"seq_len": 0}, "--seq-len must be a positive integer"),
    ("adding", {"seq_len": 1}, "at least 2"),
    ("mnist1d", {"seq_len": 100}, "40 steps"),
])
def test_bad_task_input(name, kw, needle):
    with pytest.raises(UsageError, match=needle):
        make_task(name, **kw)


def test_trainer_learns_adding_and_evaluates_per_seed():
    task = make_task("adding", seq_len=10)
    trainer, _ = recurrent_trainer(task, cell="lstm", hidden=16, lr=1e-2, batch_size=32)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    start = trainer.evaluate(state)["mse"]

    def chunk(state):
        return jax.lax.scan(lambda s, i: trainer.step(s, i, trainer.data), state, jnp.arange(60))

    state, metrics = jax.jit(chunk)(state)
    assert np.isfinite(np.asarray(metrics["loss"])).all()
    assert trainer.evaluate(state)["mse"] < min(start, 0.2)

    stacked = jax.vmap(trainer.init)(jax.random.split(jax.random.PRNGKey(0), 3))
    res = trainer.evaluate(stacked)
    assert isinstance(res["mse_per_seed"], list) and len(res["mse_per_seed"]) == 3
    assert len(set(res["mse_per_seed"])) == 3                 # three different inits
    assert res["mse"] == pytest.approx(np.mean(res["mse_per_seed"]))


@pytest.mark.parametrize("name, make_batch", [("adding", adding_batch), ("copy", copy_batch)])
def test_fixed_eval_batch_is_the_one_drawn_op_by_op(name, make_batch):
    # Drawn by one compiled program for start-up time; the numbers must not change with that.
    task = make_task(name, seq_len=30)
    want = make_batch(jax.random.PRNGKey(EVAL_KEY), EVAL_EXAMPLES, 30)
    np.testing.assert_array_equal(task.data["x"], want[0])
    np.testing.assert_array_equal(task.data["y"], want[1])
