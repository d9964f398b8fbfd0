"""LogicSeg's logic-guided inference (Li et al., ICCV 2023, Sec. 3.3), for any class tree.

The node scores of every pixel are refined by a few rounds of message passing in which
the logic rules of training (hseg_mm/models/losses/logic_rules.py) are the messages, then
the top-scoring root-to-leaf path is taken:

- Scores live on the tree laid out by level, as LogicSeg's channels are: one entry per
  class of every level (`hierarchy.levels`), so a shallow leaf carried down (hseg-mm's
  background, one node) has one entry per level it stands at, whose parent is its entry
  one level up, as LogicSeg's repeated background channels are. s^0 = sigmoid of each
  entry's node logit.
- Message creation (Eq. 16), each node's message is the fuzzy truth of its rule at the
  current scores s:
  composition, sent by a node v to its parent: h^C_v = 1 - s_v + s_v s_parent(v);
  decomposition, sent by a node v to its children: h^D_v = 1 - s_v + s_v max_c s_c;
  exclusion, sent by a node v to its peers (the other classes of its level, M of them):
  h^E_v = -(1 - (1/M) sum_a s_v s_a).
- Aggregation (Eq. 17), each message weighted by its sender's score, averaged over the
  senders of its kind:
  s_v <- s_v + (1/|children|) sum_c s_c h^C_c + s_parent h^D_parent + (1/M) sum_a s_a h^E_a,
  a term left out where v has no such sender; then the scores of each level are
  normalised by a softmax over that level's classes.
- After K iterations (Eq. 18), the top-scoring path: a leaf's score is the sum of its
  path's entries, one per level, and the prediction is the best leaf (hseg-mm's
  `path_sum` rule, which K = 0 gives exactly).

Every step is a product with one of a few fixed (E, E) matrices over the E = sum_k C_k
entries (the tree's adjacency, the level blocks) or a gather of each node's children.

Sources, and what is not yet checked. The paper's equations could not be read where this
was written (only its abstract and introduction were reachable), so the forms above are
reconstructed: the messages are the rules' fuzzy truths as training relaxes them (and as
a third-party reimplementation, lauralargeaud/Projet_long_hierarchical, quotes Eq. 16 in
its comments); the aggregation (each message times its sender's score, averaged over the
children and over the peers) and the softmax per level follow LogicSeg's own `passing()`
(lingorX/LogicSeg, mmseg/models/segmentors/encoder_decoder.py) and that
reimplementation; the default of 2 iterations is the reimplementation's
(`--message-passing-iter-count`): `passing()` has no count, and its commented-out call
runs it once. Still open, to be checked against Eqs. 16-18 of the paper (arXiv:2309.13556,
Sec. 3.3; a search of the stored copies of it in December 2026 reached its abstract,
introduction and Fig. 4's caption only): whether the exclusion peers are the whole level
(here and in `passing()`) or the siblings (the reimplementation, and every exclusion
example in LogicSeg's overview figure), and whether the softmax comes before the
messages (`passing()`) or after each update (here and the reimplementation).
That function is commented out and cannot run (it returns an undefined name), and departs
from the equations where hseg-mm follows them: its `D_message` puts each child's score
where Eq. 16 has the max over the children, its `E_message` averages the peers over the
level's size n (here over the n - 1 peers), and it subtracts the exclusion term, which
would raise a node whose peers are confident; here, as in the rule, confident peers lower
it.
"""
from typing import List, Mapping, Tuple, Union

import torch
from torch import Tensor

from ..hierarchy import ClassHierarchy, build_hierarchy
from ..utils.tree_cache import tree_cached

__all__ = ['LOGIC_ITERATIONS', 'logic_leaf_scores', 'logic_message_passing']

# The number of message-passing iterations unless a config sets one.
LOGIC_ITERATIONS = 2


@tree_cached  # once per tree object; traced as constants under torch.compile
def _layout(hierarchy: ClassHierarchy) -> Tuple[List[int], Tensor, Tensor, Tensor,
                                                  List[List[int]], List[int], Tensor]:
    """The level-by-level layout's fixed tensors (on the CPU).

    Returns:
        nodes: (E,) node index of each entry, level blocks one after another.
        up: (E, E) float, up[e, f] = 1 iff entry f is entry e's parent.
        fan_in: (E,) float, the number of children of each entry (1 where none, a divisor).
        peers: (E, E) float, peers[e, a] = 1 / (C_k - 1) for the other entries a of e's
            level k (0 in a level of one class).
        children: for each entry with children, its children padded with E (an appended
            -inf column).
        parents_with_children: the entries that have children, in that order.
        leaf_path: (L, E) float, 1 on the entries of leaf l's path (one per level).
    """
    offsets, start = [], 0
    for members in hierarchy.levels:
        offsets.append(start)
        start += len(members)
    size = start
    nodes = [v for members in hierarchy.levels for v in members]
    up = torch.zeros(size, size)
    for k in range(1, hierarchy.num_levels):
        for c, parent in enumerate(hierarchy.level_parents(k)):
            up[offsets[k] + c, offsets[k - 1] + parent] = 1
    peers = torch.zeros(size, size)
    for k, members in enumerate(hierarchy.levels):
        c = len(members)
        if c > 1:
            block = torch.full((c, c), 1.0 / (c - 1)).fill_diagonal_(0)
            peers[offsets[k]:offsets[k] + c, offsets[k]:offsets[k] + c] = block
    kids = [torch.nonzero(up[:, f]).flatten().tolist() for f in range(size)]
    with_children = [f for f in range(size) if kids[f]]
    fan_out = max((len(kids[f]) for f in with_children), default=0)
    children = [kids[f] + [size] * (fan_out - len(kids[f])) for f in with_children]
    leaf_path = torch.zeros(hierarchy.num_leaves, size)
    for k in range(hierarchy.num_levels):
        for leaf, c in enumerate(hierarchy.leaf_to_level[k]):
            leaf_path[leaf, offsets[k] + int(c)] = 1
    fan_in = up.sum(0).clamp_min(1)
    return nodes, up, fan_in, peers, children, with_children, leaf_path


def _matmul(matrix: Tensor, scores: Tensor) -> Tensor:
    """(E', E) matrix times (N, E, P) scores -> (N, E', P)."""
    return torch.einsum('ef,nfp->nep', matrix, scores)


def logic_message_passing(node_logits: Tensor, hierarchy: Union[ClassHierarchy, Mapping, str],
                          iterations: int = LOGIC_ITERATIONS) -> Tensor:
    """Scores of the level-by-level layout after `iterations` rounds (module docstring).

    Args:
        node_logits: (N, V, ...) node logits in `hierarchy.node_names` order.
        hierarchy: the class tree.
        iterations: K >= 0; K = 0 returns the sigmoid scores.

    Returns:
        (N, E, ...) scores, E = sum of the level sizes, level 0's classes first, each
        level's classes in `hierarchy.levels` order; in [0, 1], each level summing to 1
        when K > 0.
    """
    hierarchy = build_hierarchy(hierarchy)
    if iterations < 0 or int(iterations) != iterations:
        raise ValueError(f"the 'logic' rule's iterations must be an integer >= 0, "
                         f'got {iterations!r}')
    nodes, up, fan_in, peers, children, with_children, _ = _layout(hierarchy)
    device = node_logits.device
    n, trailing = node_logits.shape[0], node_logits.shape[2:]
    s = node_logits.float().flatten(2).index_select(
        1, torch.as_tensor(nodes, device=device)).sigmoid()  # (N, E, P)
    up, fan_in, peers = up.to(device), fan_in.to(device).view(1, -1, 1), peers.to(device)
    child_index = torch.as_tensor(children, device=device)  # (E_inner, fan_out)
    inner = torch.as_tensor(with_children, device=device)
    sizes = hierarchy.level_sizes
    for _ in range(int(iterations)):
        # message creation (Eq. 16): the truth of each sender's rule
        h_c = 1 - s + s * _matmul(up, s)  # v -> parent(v), from v
        padded = torch.cat([s, s.new_full((n, 1, s.shape[2]), float('-inf'))], dim=1)
        max_child = padded.index_select(1, child_index.flatten()) \
            .unflatten(1, child_index.shape).amax(2)  # (N, E_inner, P)
        s_inner = s.index_select(1, inner)
        h_d = torch.zeros_like(s).index_copy_(1, inner, 1 - s_inner + s_inner * max_child)
        h_e = -(1 - s * _matmul(peers, s))  # not (v and a), averaged over v's peers
        # aggregation (Eq. 17): messages weighted by their senders' scores; the children's
        # averaged (up^T sums them), the one parent's as is, the peers' averaged
        s = s + _matmul(up.t(), s * h_c) / fan_in + _matmul(up, s * h_d) + \
            _matmul(peers, s * h_e)
        # level-wise normalisation: a softmax over each level's classes
        s = torch.cat([block.softmax(dim=1) for block in s.split(sizes, dim=1)], dim=1)
    return s.reshape(n, s.shape[1], *trailing)


def logic_leaf_scores(node_logits: Tensor, hierarchy: Union[ClassHierarchy, Mapping, str],
                      iterations: int = LOGIC_ITERATIONS) -> Tensor:
    """Leaf scores of the 'logic' rule: the sum of each leaf's path after message passing.

    Args:
        node_logits: (N, V, ...) node logits in `hierarchy.node_names` order.
        hierarchy: the class tree.
        iterations: K >= 0 message-passing rounds (K = 0: the `path_sum` rule).

    Returns:
        (N, L, ...), channel l = label id l: sums of one score per level, in [0, D] (D
        levels), non-negative, so the metric's calibration divides them by their sum
        (`RULE_PROBABILITIES`: 'normalised'), as for the other sigmoid rules.
    """
    hierarchy = build_hierarchy(hierarchy)
    s = logic_message_passing(node_logits, hierarchy, iterations)
    leaf_path = _layout(hierarchy)[-1].to(s.device)
    scores = _matmul(leaf_path, s.flatten(2))
    return scores.reshape(s.shape[0], hierarchy.num_leaves, *s.shape[2:])
