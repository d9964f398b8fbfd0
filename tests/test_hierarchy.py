import numpy as np
import pytest
import torch

from hseg_mm.hierarchy import ClassHierarchy, HierarchyError


def test_person_part_nodes_and_levels(person_tree):
    h = person_tree
    # Channel order: depth 1 (background, body), depth 2, then the 6 parts by id.
    assert h.node_names == ['background', 'body', 'upper_body', 'lower_body', 'head', 'torso',
                            'upper_arm', 'lower_arm', 'upper_leg', 'lower_leg']
    assert h.num_levels == 3 and h.level_sizes == [2, 3, 7]
    # background (a depth-1 leaf) is carried down to every level.
    assert h.level_names(0) == ['background', 'body']
    assert h.level_names(1) == ['background', 'upper_body', 'lower_body']
    assert h.level_names(2) == h.leaf_names == [
        'background', 'head', 'torso', 'upper_arm', 'lower_arm', 'upper_leg', 'lower_leg']
    assert h.level_parents(1) == [0, 1, 1]
    assert h.level_parents(2) == [0, 1, 1, 1, 1, 2, 2]


def test_person_part_ancestors_descendants(person_tree):
    h = person_tree
    head, upper, body = h.node_index('head'), h.node_index('upper_body'), h.node_index('body')
    assert h.ancestors[head] == [upper, body]
    assert h.ancestors[h.node_index('background')] == []
    # body's strict descendants, in channel order: upper_body, lower_body, six parts.
    assert h.descendants[body] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert h.children[h.node_index('lower_body')] == [8, 9]


def test_person_part_luts_keep_ignore(person_tree):
    lut = person_tree.level_luts()
    assert lut.shape == (3, 256)
    # leaf id -> level class: torso (2) is body (1), upper_body (1), torso (2).
    assert lut[:, 2].tolist() == [1, 1, 2]
    # lower_leg (6) is body (1), lower_body (2), lower_leg (6).
    assert lut[:, 6].tolist() == [1, 2, 6]
    assert lut[:, 255].tolist() == [255, 255, 255]
    assert lut[:, 7].tolist() == [-1, -1, -1]  # not in the tree


def test_seed_ids_map_to_same_names():
    h = ClassHierarchy('pascal_part_seeds')
    # seeds: 1 low_hand (lower_arm), 3 low_leg, 6 up_hand; levels ordered by smallest id.
    assert h.leaf_names == ['background', 'lower_arm', 'torso', 'lower_leg', 'head',
                            'upper_leg', 'upper_arm']
    assert h.level_names(1) == ['background', 'upper_body', 'lower_body']
    # level 2 of ids 0..6: bg 0, low_hand upper 1, torso 1, low_leg lower 2, head 1, up_leg 2, up_hand 1
    assert h.leaf_to_level[1].tolist() == [0, 1, 1, 2, 1, 2, 1]


def test_four_level_tree_shuffled_ids(four_level_tree):
    h = four_level_tree
    # depth 1 by smallest id below: ground (0), thing (1), sky (3); depth 2: road 0,
    # vehicle 1, person 2, grass 5; depth 3: car 1, bike 4; depth 4: sedan 1, truck 6.
    assert h.node_names == ['ground', 'thing', 'sky', 'road', 'vehicle', 'person', 'grass',
                            'car', 'bike', 'sedan', 'truck']
    assert h.num_levels == 4 and h.level_sizes == [3, 5, 6, 7]
    assert h.level_names(1) == ['road', 'vehicle', 'person', 'sky', 'grass']
    assert h.level_names(2) == ['road', 'car', 'person', 'sky', 'bike', 'grass']
    assert h.level_names(3) == ['road', 'sedan', 'person', 'sky', 'bike', 'grass', 'truck']
    # leaf l at each level, worked out from the picture (columns are label ids 0..6):
    # road: ground road road road; sedan: thing vehicle car sedan; person: thing person..;
    # sky: sky everywhere; bike: thing vehicle bike bike; grass: ground grass..; truck: thing vehicle car truck
    assert h.leaf_to_level.tolist() == [
        [0, 1, 1, 2, 1, 0, 1],
        [0, 1, 2, 3, 1, 4, 1],
        [0, 1, 2, 3, 4, 5, 1],
        [0, 1, 2, 3, 4, 5, 6]]
    sedan, car, vehicle, thing = (h.node_index(n) for n in ('sedan', 'car', 'vehicle', 'thing'))
    assert h.ancestors[sedan] == [car, vehicle, thing]
    assert h.descendants[vehicle] == [car, h.node_index('bike'), sedan, h.node_index('truck')]
    # truck's path: thing, vehicle, car, truck
    assert np.flatnonzero(h.path_mask[6]).tolist() == sorted([thing, vehicle, car, 10])


def test_sum_to_levels(four_level_tree):
    p = torch.tensor([0.1, 0.2, 0.05, 0.3, 0.15, 0.1, 0.1]).view(1, 7, 1, 1)
    levels = four_level_tree.sum_to_levels(p)
    # level 1: ground = road + grass = 0.1 + 0.1; thing = 0.2 + 0.05 + 0.15 + 0.1; sky = 0.3
    assert torch.allclose(levels[0].flatten(), torch.tensor([0.2, 0.5, 0.3]))
    # level 3: road .1, car = sedan + truck = .3, person .05, sky .3, bike .15, grass .1
    assert torch.allclose(levels[2].flatten(), torch.tensor([0.1, 0.3, 0.05, 0.3, 0.15, 0.1]))
    assert torch.equal(levels[3], p)


def test_split_labels_keeps_ignore(person_tree):
    label = torch.tensor([[[0, 3, 255], [6, 1, 5]]])
    l1, l2, l3 = person_tree.split_labels(label)
    assert l1.tolist() == [[[0, 1, 255], [1, 1, 1]]]
    assert l2.tolist() == [[[0, 1, 255], [2, 1, 2]]]
    assert torch.equal(l3, label)
    assert label.tolist() == [[[0, 3, 255], [6, 1, 5]]]  # input untouched


def test_split_labels_rejects_ids_outside_tree(person_tree):
    with pytest.raises(ValueError, match=r'label ids \[7, 12\] are not in the hierarchy'):
        person_tree.split_labels(torch.tensor([[0, 7, 12]]))


def test_node_targets(person_tree):
    t = person_tree.node_targets(torch.tensor([[[4, 255]]]))
    # lower_arm (4): on path body (1), upper_body (2), lower_arm (7); ignore: all zero.
    assert t.shape == (1, 10, 1, 2)
    assert t[0, :, 0, 0].nonzero().flatten().tolist() == [1, 2, 7]
    assert t[0, :, 0, 1].sum() == 0


def test_single_child_and_flat_trees():
    h = ClassHierarchy(dict(a=0, b=dict(c=dict(d=1, e=2))))
    assert h.level_names(1) == ['a', 'c'] and h.leaf_to_level.tolist() == [[0, 1, 1], [0, 1, 1],
                                                                          [0, 1, 2]]
    flat = ClassHierarchy(dict(x=1, y=0))
    assert flat.num_levels == 1 and flat.leaf_names == ['y', 'x']


@pytest.mark.parametrize('tree, message', [
    (dict(a=0, b=dict(c=1, d=1)), "label id 1 is used by both 'b/c' and 'b/d'"),
    (dict(a=0, b=dict()), "node 'b' is empty"),
    (dict(a=0, b=dict(c='1')), "leaf 'b/c' has '1' \\(str\\)"),
    (dict(a=0, b=dict(c=1.0)), "leaf 'b/c' has 1.0 \\(float\\)"),
    (dict(a=0, b=dict(a=1)), "node name 'a' is used twice"),
    (dict(a=0, b=2), 'missing \\[1\\]'),
    (dict(a=0, b=255), "leaf 'b' uses the ignore index"),
    (dict(a=0, b=dict(c=True)), "leaf 'b/c' has True"),
    (dict(), 'non-empty mapping'),
    ('no_such_preset', 'unknown hierarchy preset'),
])
def test_malformed_trees(tree, message):
    with pytest.raises(HierarchyError, match=message):
        ClassHierarchy(tree)


def test_single_child_chains_keep_a_node_per_level():
    # the HSSN release's PASCAL-Person-Part layout: background repeated at every level,
    # as the chain background_l1 -> background_l2 -> background (12 nodes, the release's
    # 12 channels), every leaf at depth 3
    h = ClassHierarchy('pascal_person_part_hssn')
    assert h.num_nodes == 12 and h.level_sizes == [2, 3, 7]
    assert h.node_names[:5] == ['background_l1', 'body', 'background_l2', 'upper_body',
                                'lower_body']
    assert {h.depths[v] for v in h.leaf_nodes} == {3}
    # background is class 0 at every level; lower_leg (6) is body (1) / lower_body (2) / 6
    assert h.leaf_to_level[:, 0].tolist() == [0, 0, 0]
    assert h.leaf_to_level[:, 6].tolist() == [1, 2, 6]
    assert h.path_mask[0].sum() == 3  # background's path: its three chain nodes


@pytest.mark.parametrize('name', ['cityscapes', 'pascal_person_part', 'lip'])
def test_hssn_presets_have_the_levels_of_the_plain_ones(name):
    # a chain only adds nodes: the same leaves, levels and class of every leaf at every
    # level, so metrics of the two trees compare
    chain, plain = ClassHierarchy(f'{name}_hssn'), ClassHierarchy(name)
    assert chain.leaf_names == plain.leaf_names
    assert chain.level_sizes == plain.level_sizes
    assert np.array_equal(chain.leaf_to_level, plain.leaf_to_level)
    assert chain.num_nodes == plain.num_nodes + (1 if name == 'cityscapes' else 2)
