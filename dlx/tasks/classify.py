"""Supervised classification on arrays in memory: the Trainer that cnn-demo (and any
command that trains a classifier) hands to the one training loop.

The model is split once into a static graphdef and its parameters (the Flax performance
guide's advice for small models): the step is a pure function of arrays, so the loop can
scan and vmap it without any per-call graph traversal.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx.train import Trainer, epoch_order, first_order, shard_batch


def adam(lr: float, clip: float | None = None) -> optax.GradientTransformation:
    tx = optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def split_init(make_model: Callable[[nnx.Rngs], nnx.Module]):
    """(graphdef, init) where init(key) returns the model's parameters as a pure pytree."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))

    def init(key):
        _, params = nnx.split(make_model(nnx.Rngs(key)))
        return params

    return graphdef, init


def xent_per_member(logits, labels):
    """Mean cross-entropy over the batch: a scalar for logits (B, C), one per member (M,)
    for a family of M independent models trained in one program, logits (M, B, C). Their
    sum is what a step differentiates: each member's gradient (and Adam update) is then
    exactly what it would get alone."""
    labels = jnp.broadcast_to(labels, logits.shape[:-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(-1)


def accuracy(logits, labels):
    """Fraction correct: a scalar, or one per member of a family (M,)."""
    return jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)


def classifier(make_model, x_train, y_train, *, lr: float, batch_size: int, clip: float | None = None,
               evaluate=None) -> tuple[Trainer, object]:
    """Trainer for cross-entropy classification. State: params, optimizer state, data key,
    and the current epoch's example order."""
    graphdef, init_params = split_init(make_model)
    tx = adam(lr, clip)
    n = len(y_train)

    def init(key):
        k_model, k_data = jax.random.split(key)
        params = init_params(k_model)
        return {"params": params, "opt": tx.init(params), "key": k_data, "order": first_order(k_data, n)}

    def step(state, i, data):
        x, y = data
        idx, order = epoch_order(state["key"], i, n, batch_size, state["order"])
        xb, yb = shard_batch((x[idx], y[idx]))

        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(xb)
            per = xent_per_member(logits, yb)
            return per.sum(), (per, logits)

        (_, (per, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        acc = accuracy(logits, yb).mean()
        # A family's records show its members' mean loss, as their mean accuracy.
        return {**state, "params": params, "opt": opt, "order": order}, {"loss": per.mean(), "accuracy": acc}

    return Trainer(init=init, step=step, data=(x_train, y_train), evaluate=evaluate,
                   examples_per_step=batch_size), graphdef


def eval_fn(graphdef, x, y, batch: int = 2048):
    """evaluate(params[, x, y]) -> (loss, accuracy) over the whole set, in batches; floats,
    or numpy arrays (M,) for a family of models."""

    @jax.jit
    def run(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        labels = jnp.broadcast_to(y, logits.shape[:-1])
        per = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return per.sum(-1), (jnp.argmax(logits, -1) == labels).sum(-1)

    def evaluate(params, x=x, y=y):
        loss = acc = 0.0
        for i in range(0, len(y), batch):
            l, a = run(params, x[i:i + batch], y[i:i + batch])
            loss, acc = loss + np.asarray(l, np.float64), acc + np.asarray(a, np.float64)
        n = len(y)
        return (loss / n).tolist(), (acc / n).tolist()

    return evaluate
