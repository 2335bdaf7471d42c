"""Hand-written kernels of the learner's hot path, with the maths of the plain PyTorch modules.

Speed machinery: an optimisation of ``riskq.model.reference``, the plain update (``nn.GRU``,
the full head, ``torch.sort``) that ``algo.update=reference`` trains with; the fast learner
(``riskq.model.learner``) runs these kernels instead and gives the same numbers.

- ``gru_sequences``: ``nn.GRU`` over whole sequences, several GRUs in one time loop (the
  learner's online and target networks). The gates are kept and the backward is written out
  (three small ops per time step; the big matrix products run once over all steps), instead of
  autograd revisiting a dozen per-step nodes.
- ``gru_steps``: the same equations as plain autograd ops, for sequences of a few steps.
- ``action_head``: ``Linear(H, A*K)`` evaluated for one action per row, [R, H] -> [R, K], as one
  matrix product per action on that action's rows: the loss needs only the taken actions'
  outputs, 1/A of the arithmetic of the full head, forward and backward.
- ``sort_quantiles``: the sort along K that makes quantiles non-crossing (numpy's vectorised
  sort on CPU, split over the torch threads; ``torch.sort`` on other devices).
- ``retain_freed_memory``: keep glibc from handing big freed blocks back to the OS (CPU).

Shapes: T steps, B' sequences, H hidden, R rows, A actions, K quantiles.
tests/test_learner_equivalence.py checks every kernel against the plain modules and the fast
update against ``riskq.model.reference``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

_HEAP_BYTES = 1 << 30  # glibc M_MMAP_THRESHOLD / M_TRIM_THRESHOLD set by retain_freed_memory
_SORT_CHUNK_ROWS = 16_384  # numpy sorts are split over threads from twice this many rows
# action_head: the full head and a gather up to this many multiply-adds (measured forward and
# backward, 1 thread: the dense head is 1.6x faster at 1.6M (256 rows, 3 actions); the
# grouped one wins from about 5-10M, 3x at 44M (1024 rows, 21 actions)
DENSE_HEAD_MACS = 1 << 22
# Fused elementwise derivatives: grad * y * (1 - y) of y = sigmoid(.), grad * (1 - y^2) of tanh.
_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward
_POOLS: dict[int, ThreadPoolExecutor] = {}


@functools.cache
def retain_freed_memory() -> bool:
    """Let glibc's malloc reuse freed memory for big tensors instead of returning it to the OS.

    By default every tensor over ~32 MB (and freed heap tops over ~64 MB) goes back to the
    kernel on free, so the next update page-faults its big temporaries in again; on this
    project's 2-core machines that tripled the cost of the quantile loss. Process-wide, CPU
    only, no effect on results; False where the C library has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h> parameter numbers
    return bool(mallopt(m_mmap_threshold, _HEAP_BYTES) and mallopt(m_trim_threshold, _HEAP_BYTES))


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers)
    return _POOLS[workers]


def _numpy_sort_(array: np.ndarray) -> None:
    """Sort array [..., K] in place along K; long arrays over torch's thread count."""
    rows = array.reshape(-1, array.shape[-1])  # [R, K], a view of a contiguous array
    workers = torch.get_num_threads()
    if workers == 1 or rows.shape[0] < 2 * _SORT_CHUNK_ROWS:
        rows.sort(axis=-1)
        return
    chunks = np.array_split(rows, workers)  # numpy releases the GIL while sorting
    list(_pool(workers).map(lambda chunk: chunk.sort(axis=-1), chunks))


def sort_quantiles(values: torch.Tensor) -> torch.Tensor:
    """values [..., K] sorted ascending along K (CONVENTIONS.md section 3: non-crossing quantiles).

    Differentiable. On CPU numpy sorts (about 7x faster than torch.sort for many short rows);
    with autograd the permutation comes from numpy's argsort and ``gather`` routes gradients.
    """
    if values.device.type != "cpu":
        return torch.sort(values, dim=-1).values  # [..., K]
    if not values.requires_grad:
        return sort_quantiles_(values.detach().clone())  # [..., K]
    order = np.argsort(values.detach().numpy(), axis=-1)  # [..., K]
    return values.gather(-1, torch.from_numpy(order))  # [..., K]


def sort_quantiles_(values: torch.Tensor) -> torch.Tensor:
    """Sort values [..., K] along K in place (no autograd) and return them."""
    if values.device.type != "cpu" or not values.is_contiguous():
        values.copy_(torch.sort(values, dim=-1).values)
        return values
    _numpy_sort_(values.numpy())
    return values


class _GRUSequences(torch.autograd.Function):
    """S one-layer GRUs stepped together over T steps (PyTorch's gate equations, order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = n + z * (h - n).

    The first G sets (``inputs`` and the four GRU parameters stacked [G, ...]) are
    differentiated; the other S - G (``frozen``: inputs and parameters, e.g. the learner's
    target network riding along in the same per-step ops) are not. Per-step tensors are
    stored time-major, [T, S, B', .], so every step writes contiguously.
    """

    @staticmethod
    def forward(ctx, hidden, inputs, w_ih, b_ih, w_hh, b_hh, *frozen):
        n_grad, steps, batch = inputs.shape[:3]  # G, T, B'
        sets, size = hidden.shape[0], hidden.shape[-1]  # S, H
        frozen_inputs = frozen[0] if frozen else inputs[:0]  # [S - G, T, B', I]
        if frozen:  # all S sets' parameters: [S, ...]
            w_ih, b_ih, w_hh, b_hh = (
                torch.cat([a, b]) for a, b in zip((w_ih, b_ih, w_hh, b_hh), frozen[1:], strict=True)
            )
        gates_x = inputs.new_empty(sets, steps * batch, 3 * size)  # [S, T*B', 3H]
        for group, rows in ((slice(0, n_grad), inputs), (slice(n_grad, sets), frozen_inputs)):
            if rows.shape[0] > 0:
                flat = rows.reshape(rows.shape[0], steps * batch, -1)  # [S', T*B', I]
                torch.baddbmm(b_ih[group].unsqueeze(1), flat, w_ih[group].mT, out=gates_x[group])
        gates_x = gates_x.view(sets, steps, batch, 3 * size).transpose(0, 1)  # [T, S, B', 3H]
        gates_h = inputs.new_empty(steps, sets, batch, 3 * size)  # [T, S, B', 3H]
        reset_update = inputs.new_empty(steps, sets, batch, 2 * size)  # (r, z): [T, S, B', 2H]
        new = inputs.new_empty(steps, sets, batch, size)  # n: [T, S, B', H]
        outputs = inputs.new_empty(steps, sets, batch, size)  # h_t: [T, S, B', H]
        x_rz, x_n = gates_x[..., : 2 * size], gates_x[..., 2 * size :]  # views
        h_rz, h_n = gates_h[..., : 2 * size], gates_h[..., 2 * size :]  # views
        reset, update = reset_update[..., :size], reset_update[..., size:]  # views
        b_hh_rows, w_hh_t, h = b_hh.unsqueeze(1), w_hh.mT, hidden
        for t in range(steps):
            torch.baddbmm(b_hh_rows, h, w_hh_t, out=gates_h[t])  # [S, B', 3H]
            torch.add(x_rz[t], h_rz[t], out=reset_update[t]).sigmoid_()  # r, z
            torch.addcmul(x_n[t], reset[t], h_n[t], out=new[t]).tanh_()  # n
            h = torch.lerp(new[t], h, update[t], out=outputs[t])  # n + z (h - n)
        trained = (slice(None), slice(0, n_grad))  # [T, :G]
        ctx.save_for_backward(
            inputs,
            hidden[:n_grad],
            w_ih[:n_grad],
            w_hh[:n_grad],
            *(x[trained] for x in (outputs, gates_h, reset_update, new)),
        )
        ctx.n_frozen = len(frozen) and sets - n_grad
        return outputs.transpose(0, 1)  # [S, T, B', H]

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, hidden, w_ih, w_hh, outputs, gates_h, reset_update, new = ctx.saved_tensors
        steps, n_grad, batch, size = outputs.shape  # [T, G, B', H]
        previous = torch.cat([hidden.unsqueeze(0), outputs[:-1]])  # h_{t-1}: [T, G, B', H]
        reset, update = reset_update[..., :size], reset_update[..., size:]  # [T, G, B', H]
        # d pre-activation / d h_t of each gate, without the recurrent path: [T, G, B', 3, H]
        coefficients = inputs.new_empty(steps, n_grad, batch, 3, size)
        d_new = _tanh_backward(1 - update, new)  # (1 - z)(1 - n^2): via n, [T, G, B', H]
        _sigmoid_backward(
            d_new * gates_h[..., 2 * size :], reset, grad_input=coefficients[..., 0, :]
        )
        _sigmoid_backward(previous - new, update, grad_input=coefficients[..., 1, :])
        torch.mul(d_new, reset, out=coefficients[..., 2, :])  # d (r * (W_hn h + b_hn)) / d (.)
        grad_outputs = grad_outputs[:n_grad].transpose(0, 1)  # [T, G, B', H]
        grad_h = torch.empty_like(outputs)  # dL/dh_t: [T, G, B', H]
        grad_gates_h = inputs.new_empty(steps, n_grad, batch, 3, size)  # [T, G, B', 3, H]
        flat_gates_h = grad_gates_h.view(steps, n_grad, batch, 3 * size)  # [T, G, B', 3H]
        grad_h[-1] = grad_outputs[-1]
        torch.mul(coefficients[-1], grad_h[-1].unsqueeze(2), out=grad_gates_h[-1])
        for t in range(steps - 2, -1, -1):
            torch.addcmul(grad_outputs[t], grad_h[t + 1], update[t + 1], out=grad_h[t])
            grad_h[t].baddbmm_(flat_gates_h[t + 1], w_hh)  # + recurrent path
            torch.mul(coefficients[t], grad_h[t].unsqueeze(2), out=grad_gates_h[t])
        grad_hidden = torch.addcmul(flat_gates_h[0] @ w_hh, grad_h[0], update[0])  # [G, B', H]
        grad_gates_x = grad_gates_h.clone()  # n's input path skips r: [T, G, B', 3, H]
        torch.mul(grad_h, d_new, out=grad_gates_x[..., 2, :])
        grads = [
            _set_grads(g, inputs[g], previous[:, g], grad_gates_x, flat_gates_h, w_ih[g])
            for g in range(n_grad)
        ]  # G x (inputs, w_ih, b_ih, w_hh, b_hh)
        grad_inputs, grad_w_ih, grad_b_ih, grad_w_hh, grad_b_hh = (
            parts[0].unsqueeze(0) if n_grad == 1 else torch.stack(parts)
            for parts in zip(*grads, strict=True)
        )  # [G, ...] each
        if not ctx.needs_input_grad[0]:
            grad_hidden = None
        elif ctx.n_frozen:
            grad_hidden = torch.cat([grad_hidden, grad_hidden.new_zeros(ctx.n_frozen, batch, size)])
        frozen_grads = (None,) * (5 if ctx.n_frozen else 0)
        return grad_hidden, grad_inputs, grad_w_ih, grad_b_ih, grad_w_hh, grad_b_hh, *frozen_grads


def _set_grads(index, inputs, previous, grad_gates_x, flat_gates_h, w_ih):
    """Gradients of set ``index`` from its per-step gate gradients, one matrix product each:
    (inputs [T, B', I], W_ih [3H, I], b_ih [3H], W_hh [3H, H], b_hh [3H])."""
    steps, batch, _ = inputs.shape
    gates_x = grad_gates_x[:, index].reshape(steps * batch, -1)  # [T*B', 3H]
    gates_h = flat_gates_h[:, index].reshape(steps * batch, -1)  # [T*B', 3H]
    flat_inputs = inputs.reshape(steps * batch, -1)  # [T*B', I]
    return (
        (gates_x @ w_ih).view(inputs.shape),  # [T, B', I]
        gates_x.t() @ flat_inputs,  # [3H, I]
        gates_x.sum(0),  # [3H]
        gates_h.t() @ previous.reshape(steps * batch, -1),  # [3H, H]
        gates_h.sum(0),  # [3H]
    )


GRU_PARAMETERS = ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
# Sequences up to this many steps take gru_steps: measured on 2 agents' GRU 64 plus a target
# network, 32 episodes, forward and backward, 1 thread: 1.85x faster than _GRUSequences at
# T = 1, 1.1x at T = 4 and 6, slower from T = 8.
SHORT_SEQUENCE_STEPS = 4


def gru_steps(gru: nn.GRU, inputs: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
    """Outputs [T, B', H] of a one-layer ``nn.GRU`` on inputs [T, B', I] from hidden [B', H]
    (None: the zero state), as plain autograd ops, one step at a time.

    The same gate equations as ``_GRUSequences``; for a sequence of a few steps (the one-step
    matrix games), a dozen autograd nodes cost less than the kernel's set-up and written-out
    backward. From the zero state the first step's recurrent product is just b_hh (no W_hh
    gradient: it is exactly zero there).
    """
    size = gru.hidden_size
    gates_x = nn.functional.linear(inputs, gru.weight_ih_l0, gru.bias_ih_l0)  # [T, B', 3H]
    outputs, h = [], hidden
    for t in range(inputs.shape[0]):
        if h is None:
            h_gates = gru.bias_hh_l0  # W_hh 0 + b_hh: [3H]
        else:
            h_gates = nn.functional.linear(h, gru.weight_hh_l0, gru.bias_hh_l0)  # [B', 3H]
        x_rz, x_n = gates_x[t].split([2 * size, size], dim=-1)  # [B', 2H], [B', H]
        h_rz, h_n = h_gates.split([2 * size, size], dim=-1)
        reset, update = torch.sigmoid(x_rz + h_rz).split(size, dim=-1)  # r, z: [B', H] each
        new = torch.tanh(torch.addcmul(x_n, reset, h_n))  # n: [B', H]
        # h' = n + z (h - n); from h = 0: n - z n
        h = torch.addcmul(new, update, new, value=-1) if h is None else torch.lerp(new, h, update)
        outputs.append(h)
    return outputs[0].unsqueeze(0) if len(outputs) == 1 else torch.stack(outputs)  # [T, B', H]


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[len, ...]; a view (no copy, and a cheaper backward) for a single tensor."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def gru_sequences(
    grus: list[nn.GRU],
    inputs: torch.Tensor,
    hidden: torch.Tensor,
    frozen: list[nn.GRU] = (),
    frozen_inputs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Outputs [S, T, B', H] of S one-layer GRUs from hidden [S, B', H], in one time loop.

    inputs [G, T, B', I] feed ``grus``, whose parameters get gradients (as do the inputs);
    frozen_inputs [S - G, T, B', I] feed ``frozen`` (e.g. the learner's target network), which
    get none. With one GRU and no autograd, ``nn.GRU`` itself is as fast.
    """
    params = [_stack([getattr(gru, name) for gru in grus]) for name in GRU_PARAMETERS]
    extra = ()
    if frozen:
        with torch.no_grad():
            extra = (
                frozen_inputs,
                *(_stack([getattr(g, n) for g in frozen]) for n in GRU_PARAMETERS),
            )
    return _GRUSequences.apply(hidden, inputs, *params, *extra)  # [S, T, B', H]


def _groups(actions: torch.Tensor, n_actions: int) -> tuple[torch.Tensor, list[int]]:
    """Row order grouping actions [R] by action, and each action's row count (A entries)."""
    order = torch.argsort(actions)  # [R]
    return order, torch.bincount(actions, minlength=n_actions).tolist()


class _ActionHead(torch.autograd.Function):
    """out[r] = W[a_r] f_r + b[a_r] for weight [A, K, H], bias [A, K], features [R, H]."""

    @staticmethod
    def forward(ctx, features, actions, weight, bias):
        order, counts = _groups(actions, weight.shape[0])
        grouped = features.index_select(0, order).split(counts)  # A x [R_a, H]
        outputs = torch.cat(
            [torch.addmm(bias[a], rows, weight[a].t()) for a, rows in enumerate(grouped)]
        )  # [R, K], grouped order
        ctx.save_for_backward(features, weight, order)
        ctx.counts = counts
        return torch.empty_like(outputs).index_copy_(0, order, outputs)  # [R, K]

    @staticmethod
    def backward(ctx, grad_outputs):
        features, weight, order = ctx.saved_tensors
        grads = grad_outputs.index_select(0, order).split(ctx.counts)  # A x [R_a, K]
        rows = features.index_select(0, order).split(ctx.counts)  # A x [R_a, H]
        grad_weight = torch.stack([g.t() @ f for g, f in zip(grads, rows, strict=True)])
        grad_bias = torch.stack([g.sum(0) for g in grads])  # [A, K]
        grad_grouped = torch.cat([g @ weight[a] for a, g in enumerate(grads)])  # [R, H]
        grad_features = torch.empty_like(grad_grouped).index_copy_(0, order, grad_grouped)
        return grad_features, None, grad_weight, grad_bias  # grad_weight [A, K, H]


def action_head(
    head: nn.Linear, features: torch.Tensor, actions: torch.Tensor, n_actions: int
) -> torch.Tensor:
    """Outputs of ``head`` (Linear(H, A*K)) for one action per row.

    features [..., H], actions [...] long -> [..., K]: ``head(features).view(..., A, K)``
    gathered at ``actions``. Big batches take ``_ActionHead`` (1/A of the arithmetic); small
    ones, where a few ops cost more than the arithmetic, the full head and a gather.
    """
    if actions.numel() * head.out_features * head.in_features <= DENSE_HEAD_MACS:
        outputs = head(features).view(*actions.shape, n_actions, -1)  # [..., A, K]
        index = actions[..., None, None].expand(*actions.shape, 1, outputs.shape[-1])
        return outputs.gather(-2, index).squeeze(-2)  # [..., K]
    weight = head.weight.view(n_actions, -1, head.in_features)  # [A, K, H]
    bias = head.bias.view(n_actions, -1)  # [A, K]
    rows = features.reshape(-1, features.shape[-1])  # [R, H]
    outputs = _ActionHead.apply(rows, actions.reshape(-1), weight, bias)  # [R, K]
    return outputs.view(*actions.shape, -1)  # [..., K]
