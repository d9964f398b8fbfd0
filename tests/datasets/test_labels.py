"""Layout tables, name mapping onto the tree, and raw label decoding."""
import numpy as np
import pytest

from hseg_mm.datasets.labels import (STANDARD_CLASSES, decode_label_map, layout_to_tree,
                                     read_classes_file, voc_brightness_values, voc_colormap)
from hseg_mm.datasets.synthetic_people import SEEDS_CLASSES
from hseg_mm.hierarchy import ClassHierarchy


def test_voc_colormap_first_entries():
    # bit interleaving: 1 -> (128, 0, 0), 2 -> (0, 128, 0), 3 -> (128, 128, 0), 4 -> (0, 0, 128)
    assert voc_colormap(5).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                                        [0, 0, 128]]
    assert voc_colormap(256)[255].tolist() == [224, 224, 192]  # the VOC border colour


def test_brightness_values_of_standard_ids():
    # luma 0.299 R + 0.587 G + 0.114 B of (128,0,0)=38.3, (0,128,0)=75.1, (128,128,0)=113.4,
    # (0,0,128)=14.6, (128,0,128)=52.9, (0,128,128)=89.7, border (224,224,192)=220.4
    assert voc_brightness_values(7) == [0, 14, 15, 38, 52, 53, 75, 89, 90, 113, 220]


def test_seeds_layout_maps_by_name_onto_standard_tree(person_tree):
    # seeds ids: 0 bg, 1 low_hand, 2 torso, 3 low_leg, 4 head, 5 up_leg, 6 up_hand
    # standard:  0 background, 1 head, 2 torso, 3 upper_arm, 4 lower_arm, 5 upper_leg, 6 lower_leg
    assert layout_to_tree(SEEDS_CLASSES, person_tree) == [0, 4, 2, 6, 1, 5, 3]
    assert layout_to_tree(STANDARD_CLASSES, person_tree) == list(range(7))


def test_tree_with_seed_names_takes_standard_layout():
    # seed 001's tree spells the leaves bg/low_hand/...; the standard layout still maps
    tree = ClassHierarchy(dict(bg=0, body=dict(upper=dict(low_hand=1, torso=2, head=4,
                                                          up_hand=6),
                                               lower=dict(low_leg=3, up_leg=5))))
    assert layout_to_tree(STANDARD_CLASSES, tree) == [0, 4, 2, 6, 1, 5, 3]


def test_layout_class_missing_from_tree_is_named(person_tree):
    with pytest.raises(ValueError, match=r"\['hair'\]"):
        layout_to_tree(list(STANDARD_CLASSES) + ['hair'], person_tree, source='x')


def test_read_classes_file_formats(tmp_path):
    for text in ('0: bg\n1: low_hand\n2: torso\n', '0 bg\n1 low_hand\n2 torso\n',
                 'bg: 0\nlow_hand: 1\ntorso: 2\n', 'bg\nlow_hand\n\ntorso\n',
                 '2: torso\n0: bg\n1: low_hand\n'):
        path = tmp_path / 'classes.txt'
        path.write_text(text)
        assert read_classes_file(str(path)) == ['bg', 'low_hand', 'torso'], text


@pytest.mark.parametrize('text,match', [('0: bg\n2: torso\n', r'0\.\.1'),
                                        ('0: bg\n0: torso\n', 'given twice'),
                                        ('', 'empty'), ('0: a b c\n', 'cannot parse')])
def test_read_classes_file_errors(tmp_path, text, match):
    path = tmp_path / 'classes.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_classes_file(str(path))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        read_classes_file(str(tmp_path / 'nope.txt'))


def test_decode_maps_ids_keeps_ignore_and_input():
    raw = np.array([[0, 1, 255], [4, 6, 3]], dtype=np.uint8)
    before = raw.copy()
    out = decode_label_map(raw, [0, 4, 2, 6, 1, 5, 3], 255, 'f.npy', expected_shape=(2, 3))
    # seeds -> standard: 1 -> 4, 4 -> 1, 6 -> 3, 3 -> 6; 255 stays
    assert out.tolist() == [[0, 4, 255], [1, 3, 6]]
    assert out.dtype == np.uint8
    assert np.array_equal(raw, before)  # not modified in place


def test_decode_accepts_wide_integer_dtypes():
    raw = np.array([[0, 6], [255, 2]], dtype=np.int64)
    assert decode_label_map(raw, list(range(7)), 255, 'f').tolist() == [[0, 6], [255, 2]]


@pytest.mark.parametrize('raw,match', [
    (np.zeros((2, 3, 3), np.uint8), 'colour label'),
    (np.zeros((2, 3), np.float32), 'dtype float32'),
    (np.zeros((2, 3, 2), np.uint8), 'shape'),
    (np.array([[0, 7, 9]], np.uint8), r'values \[7, 9\]'),
    (np.array([[0, -1, 2]], np.int32), r'values \[-1\]'),
    (np.array([[0, 300]], np.uint16), r'values \[300\]'),
])
def test_decode_rejects_naming_the_file(raw, match):
    with pytest.raises(ValueError, match='lbl.png') as err:
        decode_label_map(raw, list(range(7)), 255, 'lbl.png')
    assert err.match(match)


def test_decode_explains_grayscale_palette():
    # a palette label read as grayscale: 0 background, 38 head, 75 torso
    raw = np.array([[0, 38, 75]], dtype=np.uint8)
    with pytest.raises(ValueError, match='grayscale'):
        decode_label_map(raw, list(range(7)), 255, 'lbl.png')


def test_decode_checks_size():
    with pytest.raises(ValueError, match=r'lbl.png: label size \(2, 3\).*image size \(3, 2\)'):
        decode_label_map(np.zeros((2, 3), np.uint8), list(range(7)), 255, 'lbl.png',
                         expected_shape=(3, 2))


# -------------------------------------------- explicit VOC colour decoding
def voc_label():
    lab = np.array([[0, 1, 2, 3], [4, 5, 6, 255]], dtype=np.uint8)
    return lab, voc_colormap(256)[lab]  # ids and their colours, border 255 = (224, 224, 192)


def test_voc_colours_decoded_only_when_asked():
    lab, rgb = voc_label()
    with pytest.raises(ValueError, match='colour label'):
        decode_label_map(rgb, list(range(7)), 255, 'c.png')
    assert np.array_equal(decode_label_map(rgb, list(range(7)), 255, 'c.png',
                                           voc_colours=True), lab)
    rgba = np.concatenate([rgb, np.full(lab.shape + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(decode_label_map(rgba, list(range(7)), 255, 'c.png',
                                           voc_colours=True), lab)


def test_voc_grey_values_decoded_when_asked():
    lab, _ = voc_label()
    # rounding converter (PIL): 0, 38, 75, 113, 15, 53, 90, border 220
    grey = np.array([[0, 38, 75, 113], [15, 53, 90, 220]], dtype=np.uint8)
    assert np.array_equal(decode_label_map(grey, list(range(7)), 255, 'g.png',
                                           voc_colours=True), lab)
    # truncating converters give 14, 52, 89 for ids 4, 5, 6
    trunc = np.array([[14, 52, 89]], dtype=np.uint8)
    assert decode_label_map(trunc, list(range(7)), 255, 'g.png',
                            voc_colours=True).tolist() == [[4, 5, 6]]
    # labels that already hold ids are left alone
    assert np.array_equal(decode_label_map(lab, list(range(7)), 255, 'g.png',
                                           voc_colours=True), lab)


def test_voc_decoding_rejects_unknown_values():
    with pytest.raises(ValueError, match=r'c.png: colours \[\[1, 2, 3\]\]'):
        decode_label_map(np.array([[[1, 2, 3], [128, 0, 0]]], np.uint8), list(range(7)), 255,
                         'c.png', voc_colours=True)
    with pytest.raises(ValueError, match=r'g.png: not a VOC.*\[40\]'):
        decode_label_map(np.array([[0, 38, 40]], np.uint8), list(range(7)), 255, 'g.png',
                         voc_colours=True)


def test_decode_table_with_ignored_and_unknown_ids():
    # disk 0 -> leaf 0, disk 1 not in the layout (-1), disk 2 ignored (255), disk 3 -> leaf 1
    table = [0, -1, 255, 1]
    raw = np.array([[0, 2, 3, 255]], np.uint8)
    assert decode_label_map(raw, table, 255, 'f.png').tolist() == [[0, 255, 1, 255]]
    with pytest.raises(ValueError, match=r'f.png: label values \[1\] are not layout ids '
                                         r'0, 2\.\.3 nor the ignore index 255'):
        decode_label_map(np.array([[0, 1]], np.uint8), table, 255, 'f.png')


def test_layout_table_forms(person_tree):
    from hseg_mm.datasets.labels import layout_table
    # a list is layout_to_tree; None in it ignores that disk id
    assert layout_table(STANDARD_CLASSES, person_tree) == list(range(7))
    assert layout_table(['head', None, 'bg'], person_tree) == [1, 255, 0]
    # a mapping: digit-string keys, gaps -1, merged ids allowed ('hair' is no leaf)
    assert layout_table({'2': 'head', 0: 'background', 4: 'head'}, person_tree) == \
        [0, -1, 1, -1, 1]
    with pytest.raises(ValueError, match=r"\['hair'\]"):
        layout_table({0: 'background', 1: 'hair'}, person_tree)
    with pytest.raises(ValueError, match='same leaf'):  # a list names each leaf once
        layout_table(['head', 'head'], person_tree)
    with pytest.raises(ValueError, match='twice'):
        layout_table({1: 'head', '1': 'torso'}, person_tree)
