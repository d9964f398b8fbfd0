"""hseg_mm.utils.tree_cached: once per tree object eagerly; traced without dynamo's
lru_cache warning under torch.compile."""
import warnings

import torch

from hseg_mm.utils import tree_cached


class Tree:
    """A stand-in tree: hashed by identity, as ClassHierarchy is."""

    def __init__(self, width: int) -> None:
        self.width = width


def test_tree_cached_derives_once_per_tree_object():
    calls = []

    @tree_cached
    def index(tree: Tree) -> list:
        calls.append(tree)
        return list(range(tree.width))

    a, b = Tree(2), Tree(3)
    assert index(a) == [0, 1] and index(a) == [0, 1] and index(b) == [0, 1, 2]
    assert calls == [a, b]  # a's second call came from the cache


def test_tree_cached_compiles_without_the_lru_cache_warning():
    @tree_cached
    def index(tree: Tree) -> list:
        return list(range(tree.width))

    tree = Tree(3)

    def f(x: torch.Tensor) -> torch.Tensor:
        return x[index(tree)].sum()  # the index list becomes a constant of the graph

    x = torch.arange(5.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        # 0 + 1 + 2 = 3, as eagerly
        assert torch.compile(f, backend='eager', fullgraph=True)(x).item() == 3.0
    assert not [w for w in caught if 'lru_cache' in str(w.message)], \
        [str(w.message) for w in caught]
    torch._dynamo.reset()
