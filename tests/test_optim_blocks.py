"""The multi-tensor path's cache blocking (trainlab/optim/blocks.py): run on pieces of the
tensors, every option set of every optimizer gives bitwise the parameters and state of the same
rule run on the whole tensors (plain SGD, one operation, is not blocked), through new gradients
each step, a gradient of another layout, a parameter moved to new storage and a state_dict loaded
midway."""

from __future__ import annotations

import pytest
import torch
from test_optim import CASES, case_id

import trainlab.optim as to
from trainlab.optim import blocks

# pieces of 64 float32 elements (32 float64): one large tensor of an odd size, a float64 one,
# a transposed one (its gradient is not contiguous: runs whole) and small ones gathered
BLOCK = 256
SHAPES = [(33, 31), (5,), (300,), (17, 9), (1,), (40, 12)]


pytestmark = pytest.mark.usefixtures("multi_tensor_one_thread")


def make_params() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen) for s in SHAPES]
    params[2] = params[2].double()
    params[5] = params[5].t()  # (12, 40), not contiguous
    return [p.requires_grad_() for p in params]


def grads_for(params: list[torch.Tensor], gen: torch.Generator, step: int) -> None:
    for i, p in enumerate(params):
        g = p.detach() * 0.5 + torch.randn(p.shape, generator=gen, dtype=p.dtype)
        if i == 0 and step == 2:  # one step with a gradient of another layout (runs whole)
            g = g.t().contiguous().t()
        p.grad = g


def run(name: str, kwargs: dict, block: int, monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setattr(blocks, "BLOCK_BYTES", block)
    params = make_params()
    opt = getattr(to, name)(params, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for step in range(10):
        grads_for(params, gen, step)
        if step == 5:  # a parameter moved to new storage (its cut views are stale)
            params[0].data = params[0].data.clone()
        if step == 7:  # the state saved and loaded again (new state tensors)
            opt.load_state_dict(opt.state_dict())
        opt.step()
    assert opt.execution_path == "foreach"
    return params, opt


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_blocked_is_bitwise_the_whole_tensor_update(
    case: tuple[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, kwargs = case
    whole_params, whole = run(name, kwargs, 1 << 40, monkeypatch)
    assert all(
        memo.get(blocks._KEY) is None or memo[blocks._KEY].batches is None
        for memo in whole._memo.values()
    )
    our_params, ours = run(name, kwargs, BLOCK, monkeypatch)
    if kwargs == {"lr": 0.05}:  # plain SGD, one add_: nothing to gain, it runs whole
        assert blocks._KEY not in ours._memo[0]
    else:  # the blocking did happen
        cut = ours._memo[0][blocks._KEY]
        assert cut.batches is not None and len(cut.batches) > 5
        assert cut.sizes[0] == BLOCK // 4 and cut.sizes[2] == BLOCK // 8 and cut.sizes[5] == 0
    for a, b in zip(whole_params, our_params):
        assert torch.equal(a, b)
    for a, b in zip(whole_params, our_params):
        sa, sb = whole.state[a], ours.state[b]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


def test_cut_gathers_small_tensors_and_pieces() -> None:
    """Each large tensor in pieces of BLOCK_BYTES, each full piece a batch of its own; the
    small tensors and the large ones' last pieces gathered into batches of about BLOCK_BYTES;
    a group that fits in one batch runs whole."""
    shapes = [(1000,), (10,), (20,), (130,)]
    params = [torch.zeros(s) for s in shapes]
    grads = [torch.zeros(s) for s in shapes]
    old = blocks.BLOCK_BYTES
    try:
        blocks.BLOCK_BYTES = 400  # 100 float32 elements
        c = blocks.cut(params, grads, {}, params)
        assert c.sizes == [100, 0, 0, 100]
        assert c.batches == [[(0, k)] for k in range(10)] + [[(3, 0)], [(1, 0), (2, 0), (3, 1)]]
        blocks.BLOCK_BYTES = 1 << 20
        assert blocks.cut(params, grads, {}, params).batches is None
    finally:
        blocks.BLOCK_BYTES = old
