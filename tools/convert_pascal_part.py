r"""Build part label maps from the original Pascal-Part annotations: PASCAL-Person-Part
(the default), Pascal-Part-58 or Pascal-Part-108.

    python tools/convert_pascal_part.py ANNOTATIONS_PART_DIR OUT_DIR [--parts person|58|108] \
        [--split-lists DIR|gmnet] [--split-dirs] [--images DIR] [--img-dir DIR] \
        [--list-dir DIR] [--nproc N] [--skip-empty]

PASCAL-Person-Part: `python tools/convert_pascal_part.py data/Annotations_Part
data/pascal_person_part/SegmentationPart --nproc 8`, then link VOC2010's `JPEGImages/`
into `data/pascal_person_part/` (the layout `configs/_base_/datasets/pascal_person_part.py`
reads: `JPEGImages/`, `SegmentationPart/`, `<split>_id.txt`).

Pascal-Part-108 (or 58) in LogicSeg's layout with GMNet's split, one command:
`python tools/convert_pascal_part.py data/Annotations_Part data/pascal_part/ann108_dir
--parts 108 --split-lists gmnet --split-dirs --images data/VOC2010/JPEGImages --nproc 8`
writes `ann108_dir/{train,val}/<id>.png`, links `img_dir/{train,val}/<id>.jpg` to the VOC2010
images and writes `train_id.txt` / `val_id.txt` beside them, the layout
`configs/_base_/datasets/pascal_part_108.py` reads (`ann58_dir` for `pascal_part_58.py`).

Each `ANNOTATIONS_PART_DIR/<id>.mat` (a MATLAB struct `anno` whose `objects(k)` have
`class`, `class_ind`, `mask` and `parts(j).part_name` / `.mask`) becomes `<id>.png`,
a palette PNG with the VOC colour map whose indices are the label ids of the part set
(`--parts`), 255 where a part is ignored:
- person (default): the standard PASCAL-Person-Part ids, 0 background, 1 head, 2 torso,
  3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg (`PART_TO_CLASS`, docs/architecture.md,
  "Datasets and label layouts"). Only person objects (class 'person', class_ind 15) are
  painted; any other object (a dog's or a horse's 'head' included) changes nothing and
  stays background.
- 108: Pascal-Part-108 (GMNet, ECCV 2020; the ids of hseg_mm/hierarchies/pascal_part_108.yaml),
  merged as L. Rossi's scripts for GMNet merge them (LcRss/Matlab-Pascal-Part,
  my_part2ind_gray_103_4_255.m, mat2map.m; `PARTS_108`): left and right, front and back and
  numbered parts become one part; aeroplane tails, bicycle headlights, the eyes of birds,
  cows, horses and sheep, car mirrors and people's eyebrows are ignored (255); boat, chair,
  dining table and sofa are their silhouettes.
- 58: Pascal-Part-58 (BSANet, ICCV 2019; GMNet's list; pascal_part_58.yaml). No script of
  its merge is public (BSANet released label files), so `PARTS_58` is hseg-mm's reading of
  the 58 names: heads take eyes, ears, noses, muzzles, horns and beaks, legs take paws,
  hooves and feet, torsos take necks (and the tails of birds and sheep, which have no tail
  class), a vehicle's body every part but its wheels, windows, lights and plates, the
  aeroplane's stern its tail; the person is PASCAL-Person-Part's; boat, chair, dining table,
  sofa and train are their silhouettes.

Rules, all deterministic:
- Object pixels that no part covers stay background (0), as in the DeepLab release, whose
  person labels hold the parts only, and in GMNet's scripts; in the 58 set, an object with a
  catch-all class (`rest` in `PARTS_58`: the bodies, torsos and the tv frame) gives that
  class to its whole silhouette first, its parts painted over it.
- Overlaps are painted in file order, later over earlier: objects in `anno.objects`
  order (the Pascal-Part toolkit's `mat2map.m`: "objects are ordered such that later
  objects can occlude previous objects"), and within an object its parts in order, as
  `mat2map.m` paints them.
- A part name the part set lacks (for person: a person part), an object class that is not
  one of the 20 PASCAL VOC classes or disagrees with its class_ind (58, 108), a mask of the
  wrong size, a file without `anno`, without objects, or that scipy cannot read is reported,
  with all other bad files, in one error at the end (exit code 1); no label is written for
  it. The good files are still converted.

Id lists, written to `--list-dir` (default: the parent of OUT_DIR, i.e. the data root):
with `--split-lists DIR`, every `*.txt` in DIR (one id per line, or the DeepLab release's
"/JPEGImages/<id>.jpg /SegmentationPart/<id>.png" lines) is a split: only its ids are
converted, and it is written as `<split>_id.txt` (`train.txt` and `train_id.txt` both give
`train_id.txt`); an id without a .mat is a bad file. `--split-lists gmnet` is GMNet's split of
Pascal-Part (4,998 train / 5,105 val, shipped in hseg_mm/datasets/splits/pascal_part/).
Without it, every .mat is converted and `all_id.txt` lists the images with at least one part
pixel (use it as `split='all'`, or split it yourself; PASCAL-Person-Part's standard split is
1,716 train / 1,817 val). `--split-dirs` writes each split's labels into `OUT_DIR/<split>/`
(LogicSeg's layout). `--images DIR` (VOC2010's `JPEGImages/`) links each written label's
image into `--img-dir` (default: `img_dir/` beside OUT_DIR with `--split-dirs`, split by
split, else `JPEGImages/` beside it); a missing image is a bad file. With `--skip-empty`,
labels without a part pixel (nothing but background and ignored pixels) are not written,
and no list names them.
"""
import argparse
import glob
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from hseg_mm.datasets.labels import STANDARD_CLASSES, voc_colormap  # noqa: E402
from hseg_mm.datasets.pascal_person_part import PASCAL_PART_SPLITS  # noqa: E402
from hseg_mm.hierarchy import ClassHierarchy  # noqa: E402

PERSON_CLASS, PERSON_CLASS_IND = 'person', 15
# Pascal-Part person part name -> standard PASCAL-Person-Part id (docs/architecture.md,
# "Datasets and label layouts").
_GROUPS = {
    'head': ('head', 'hair', 'leye', 'reye', 'lear', 'rear', 'lebrow', 'rebrow', 'nose',
             'mouth'),
    'torso': ('torso', 'neck'),
    'upper_arm': ('luarm', 'ruarm'),
    'lower_arm': ('llarm', 'rlarm', 'lhand', 'rhand'),
    'upper_leg': ('luleg', 'ruleg'),
    'lower_leg': ('llleg', 'rlleg', 'lfoot', 'rfoot'),
}
PART_TO_CLASS: Dict[str, int] = {
    part: STANDARD_CLASSES.index(cls) for cls, parts in _GROUPS.items() for part in parts}
_PALETTE = voc_colormap(256).ravel().tolist()
IGNORE_INDEX = 255

# The 20 PASCAL VOC classes; class_ind = position + 1 (the Pascal-Part toolkit's order).
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')

# The part sets: for each object class, (rest, {part: Pascal-Part part names}). A part is
# the leaf <class>_<part> of the set's tree ('' is the class itself: 'boat'); None as a part
# ignores those names (255). 'door_#' stands for door_1, door_2, ... (the toolkit numbers
# doors, wheels, windows, lights, engines and coaches). `rest` (a part, or None) is painted
# over the object's whole silhouette before its parts.
_SIDES = 'frontside leftside rightside backside'
_LEGS4, _PAWS = 'lfleg rfleg lbleg rbleg', 'lfpa rfpa lbpa rbpa'
_LEGS8 = 'lfuleg lflleg rfuleg rflleg lbuleg lblleg rbuleg rblleg'
_HOOVES = 'lfho rfho lbho rbho'
_WHOLE: Tuple[Optional[str], dict] = ('', {})
PARTS_108 = {  # my_part2ind_gray_103_4_255.m; mat2map.m paints the whole-object classes
    'aeroplane': (None, {'body': 'body', 'stern': 'stern', 'wing': 'lwing rwing',
                         'engine': 'engine_#', 'wheel': 'wheel_#', None: 'tail'}),
    'bicycle': (None, {'wheel': 'fwheel bwheel', 'saddle': 'saddle', 'handlebar': 'handlebar',
                       'chainwheel': 'chainwheel', None: 'headlight_#'}),
    'bird': (None, {'head': 'head', 'beak': 'beak', 'torso': 'torso', 'neck': 'neck',
                    'wing': 'lwing rwing', 'leg': 'lleg rleg', 'foot': 'lfoot rfoot',
                    'tail': 'tail', None: 'leye reye'}),
    'boat': _WHOLE,
    'bottle': (None, {'cap': 'cap', 'body': 'body'}),
    'bus': (None, {'side': _SIDES, 'roof': 'roofside', 'mirror': 'leftmirror rightmirror',
                   'plate': 'fliplate bliplate', 'door': 'door_#', 'wheel': 'wheel_#',
                   'headlight': 'headlight_#', 'window': 'window_#'}),
    'car': (None, {'side': _SIDES, 'roof': 'roofside', 'plate': 'fliplate bliplate',
                   'door': 'door_#', 'wheel': 'wheel_#', 'headlight': 'headlight_#',
                   'window': 'window_#', None: 'leftmirror rightmirror'}),
    'cat': (None, {'head': 'head', 'eye': 'leye reye', 'ear': 'lear rear', 'nose': 'nose',
                   'torso': 'torso', 'neck': 'neck', 'leg': _LEGS4, 'paw': _PAWS,
                   'tail': 'tail'}),
    'chair': _WHOLE,
    'cow': (None, {'head': 'head', 'ear': 'lear rear', 'muzzle': 'muzzle',
                   'horn': 'lhorn rhorn', 'torso': 'torso', 'neck': 'neck', 'leg': _LEGS8,
                   'tail': 'tail', None: 'leye reye'}),
    'diningtable': _WHOLE,
    'dog': (None, {'head': 'head', 'eye': 'leye reye', 'ear': 'lear rear', 'nose': 'nose',
                   'torso': 'torso', 'neck': 'neck', 'leg': _LEGS4, 'paw': _PAWS,
                   'tail': 'tail', 'muzzle': 'muzzle'}),
    'horse': (None, {'head': 'head', 'ear': 'lear rear', 'muzzle': 'muzzle', 'torso': 'torso',
                     'neck': 'neck', 'leg': _LEGS8, 'tail': 'tail', 'hoof': _HOOVES,
                     None: 'leye reye'}),
    'motorbike': (None, {'wheel': 'fwheel bwheel', 'handlebar': 'handlebar',
                         'saddle': 'saddle', 'headlight': 'headlight_#'}),
    'person': (None, {'head': 'head', 'eye': 'leye reye', 'ear': 'lear rear', 'nose': 'nose',
                      'mouth': 'mouth', 'hair': 'hair', 'torso': 'torso', 'neck': 'neck',
                      'arm': 'llarm luarm rlarm ruarm', 'hand': 'lhand rhand',
                      'leg': 'llleg luleg rlleg ruleg', 'foot': 'lfoot rfoot',
                      None: 'lebrow rebrow'}),
    'pottedplant': (None, {'pot': 'pot', 'plant': 'plant'}),
    'sheep': (None, {'head': 'head', 'ear': 'lear rear', 'muzzle': 'muzzle',
                     'horn': 'lhorn rhorn', 'torso': 'torso', 'neck': 'neck', 'leg': _LEGS8,
                     'tail': 'tail', None: 'leye reye'}),
    'sofa': _WHOLE,
    'train': (None, {'head': 'head', 'head_side': 'hfrontside hleftside hrightside hbackside',
                     'head_roof': 'hroofside', 'headlight': 'headlight_#', 'coach': 'coach_#',
                     'coach_side': 'cfrontside_# cleftside_# crightside_# cbackside_#',
                     'coach_roof': 'croofside_#'}),
    'tvmonitor': (None, {'screen': 'screen'}),
}
PARTS_58 = {  # hseg-mm's reading of the 58 names (the module's docstring)
    'aeroplane': ('body', {'body': 'body', 'stern': 'stern tail', 'wing': 'lwing rwing',
                           'engine': 'engine_#', 'wheel': 'wheel_#'}),
    'bicycle': ('body', {'wheel': 'fwheel bwheel',
                         'body': 'saddle handlebar chainwheel headlight_#'}),
    'bird': ('torso', {'head': 'head leye reye beak', 'wing': 'lwing rwing',
                       'leg': 'lleg rleg lfoot rfoot', 'torso': 'torso neck tail'}),
    'boat': _WHOLE,
    'bottle': ('body', {'cap': 'cap', 'body': 'body'}),
    'bus': ('body', {'window': 'window_#', 'wheel': 'wheel_#',
                     'body': f'{_SIDES} roofside leftmirror rightmirror fliplate bliplate '
                             'door_# headlight_#'}),
    'car': ('body', {'window': 'window_#', 'wheel': 'wheel_#', 'light': 'headlight_#',
                     'plate': 'fliplate bliplate',
                     'body': f'{_SIDES} roofside leftmirror rightmirror door_#'}),
    'cat': ('torso', {'head': 'head leye reye lear rear nose', 'leg': f'{_LEGS4} {_PAWS}',
                      'tail': 'tail', 'torso': 'torso neck'}),
    'chair': _WHOLE,
    'cow': ('torso', {'head': 'head leye reye lear rear muzzle lhorn rhorn', 'tail': 'tail',
                      'leg': _LEGS8, 'torso': 'torso neck'}),
    'diningtable': _WHOLE,
    'dog': ('torso', {'head': 'head leye reye lear rear nose muzzle',
                      'leg': f'{_LEGS4} {_PAWS}', 'tail': 'tail', 'torso': 'torso neck'}),
    'horse': ('torso', {'head': 'head leye reye lear rear muzzle', 'tail': 'tail',
                        'leg': f'{_LEGS8} {_HOOVES}', 'torso': 'torso neck'}),
    'motorbike': ('body', {'wheel': 'fwheel bwheel', 'body': 'handlebar saddle headlight_#'}),
    'person': (None, {part: ' '.join(names) for part, names in _GROUPS.items()}),
    'pottedplant': (None, {'pot': 'pot', 'plant': 'plant'}),
    'sheep': ('torso', {'head': 'head leye reye lear rear muzzle lhorn rhorn', 'leg': _LEGS8,
                        'torso': 'torso neck tail'}),
    'sofa': _WHOLE,
    'train': ('', {'': 'head hfrontside hleftside hrightside hbackside hroofside headlight_# '
                       'coach_# cfrontside_# cleftside_# crightside_# cbackside_# croofside_#'}),
    'tvmonitor': ('frame', {'screen': 'screen'}),
}


class PartSet:
    """A part set's label ids (the leaves of its preset tree) and its merge table.

    Args:
        preset: the tree whose leaf names, by id, are the set's classes.
        table: `PARTS_58` / `PARTS_108`, whose parts must be the tree's leaves.
    """

    def __init__(self, preset: str, table: Dict[str, Tuple[Optional[str], dict]]) -> None:
        self.preset = preset
        self.classes: List[str] = ClassHierarchy(preset).leaf_names
        ids = {name: i for i, name in enumerate(self.classes)}

        def leaf(cls: str, part: str) -> int:
            name = cls if part == '' else f'{cls}_{part}'
            if name not in ids:
                raise KeyError(f'{preset}: no leaf {name!r} for {cls} part {part!r}')
            return ids[name]

        # class -> (rest id or None, {part name: id}, {numbered prefix 'door_': id})
        self.rules: Dict[str, Tuple[Optional[int], Dict[str, int], Dict[str, int]]] = {}
        for cls, (rest, parts) in table.items():
            exact: Dict[str, int] = {}
            numbered: Dict[str, int] = {}
            for part, names in parts.items():
                lid = IGNORE_INDEX if part is None else leaf(cls, part)
                for name in names.split():
                    if name.endswith('_#'):
                        numbered[name[:-1]] = lid
                    else:
                        exact[name] = lid
            self.rules[cls] = (None if rest is None else leaf(cls, rest), exact, numbered)

    def part_id(self, cls: str, name: object) -> Optional[int]:
        """Label id (or the ignore index) of part `name` of a `cls` object; None if unknown."""
        _, exact, numbered = self.rules[cls]
        if not isinstance(name, str):
            return None
        if name in exact:
            return exact[name]
        stem, _, number = name.rpartition('_')
        return numbered.get(stem + '_') if number.isdigit() else None

    def known_parts(self, cls: str) -> List[str]:
        _, exact, numbered = self.rules[cls]
        return sorted(exact) + sorted(f'{p}<n>' for p in numbered)


_PART_SETS: Dict[str, PartSet] = {}
PART_SET_PRESETS = {'58': ('pascal_part_58', PARTS_58), '108': ('pascal_part_108', PARTS_108)}


def part_set(name: str) -> PartSet:
    """The '58' or '108' part set (built once per process)."""
    if name not in _PART_SETS:
        _PART_SETS[name] = PartSet(*PART_SET_PRESETS[name])
    return _PART_SETS[name]


def set_classes(parts: str) -> List[str]:
    """Class names by label id of `--parts`."""
    return list(STANDARD_CLASSES) if parts == 'person' else part_set(parts).classes


class MalformedAnnotation(ValueError):
    """A .mat file that does not have the Pascal-Part structure."""


def _items(value) -> list:
    """Elements of a struct array as loadmat(squeeze_me=True) gives it: a 1x1 struct
    comes back as the struct itself, 1xN as an object array, 1x0 (or `[]`) as size 0."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _field(struct, name: str, where: str):
    if not hasattr(struct, '_fieldnames'):
        raise MalformedAnnotation(f'{where} is not a struct ({type(struct).__name__})')
    if name not in struct._fieldnames:
        raise MalformedAnnotation(f'{where} has no field {name!r} '
                                  f'(fields {list(struct._fieldnames)})')
    return getattr(struct, name)


def _mask(value, shape: Optional[Tuple[int, int]], where: str) -> np.ndarray:
    mask = np.asarray(value)
    if mask.ndim != 2 or mask.dtype.kind not in 'uib':
        raise MalformedAnnotation(f'{where}.mask: expected an (H, W) 0/1 array, got '
                                  f'shape {mask.shape} dtype {mask.dtype}')
    if shape is not None and mask.shape != shape:
        raise MalformedAnnotation(f'{where}.mask: size {mask.shape} differs from the first '
                                  f'object mask {shape}')
    return mask


def _class_ind(obj) -> Optional[np.ndarray]:
    return np.asarray(obj.class_ind) if 'class_ind' in obj._fieldnames else None


def _is_person(obj, where: str) -> bool:
    cls = _field(obj, 'class', where)
    if not isinstance(cls, str):
        raise MalformedAnnotation(f'{where}.class: expected a name, got {cls!r}')
    is_person = cls == PERSON_CLASS
    ind = _class_ind(obj)
    if ind is not None and (ind.size != 1 or (int(ind.item()) == PERSON_CLASS_IND) != is_person):
        shown = f'{ind.item():g}' if ind.size == 1 else ind.tolist()
        raise MalformedAnnotation(f'{where}: class {cls!r} and class_ind {shown} '
                                  f'disagree (person = {PERSON_CLASS_IND})')
    return is_person


def _voc_class(obj, where: str) -> str:
    """The object's class name, one of `VOC_CLASSES`, checked against its class_ind."""
    cls = _field(obj, 'class', where)
    if not isinstance(cls, str) or cls not in VOC_CLASSES:
        raise MalformedAnnotation(f'{where}.class {cls!r} is not a PASCAL VOC class '
                                  f'(known: {list(VOC_CLASSES)})')
    expected = VOC_CLASSES.index(cls) + 1
    ind = _class_ind(obj)
    if ind is not None and (ind.size != 1 or int(ind.item()) != expected):
        shown = f'{ind.item():g}' if ind.size == 1 else ind.tolist()
        raise MalformedAnnotation(f'{where}: class {cls!r} and class_ind {shown} '
                                  f'disagree ({cls} = {expected})')
    return cls


def _objects(anno) -> list:
    objects = _items(_field(anno, 'objects', 'anno'))
    if not objects:
        raise MalformedAnnotation('anno.objects is empty: the label size is unknown')
    return objects


def annotation_to_label(anno) -> Tuple[np.ndarray, int]:
    """The PASCAL-Person-Part label of one Pascal-Part `anno` struct (as loaded with
    `squeeze_me=True, struct_as_record=False`), following the module's rules.

    Returns:
        (H, W) uint8 standard ids, and the number of person objects.
    """
    shape = None
    label, people = None, 0
    for k, obj in enumerate(_objects(anno), 1):
        where = f'anno.objects({k})'  # MATLAB's 1-based index, as in the file
        mask = _mask(_field(obj, 'mask', where), shape, where)
        if label is None:
            shape = mask.shape
            label = np.zeros(shape, dtype=np.uint8)
        if not _is_person(obj, where):
            continue
        people += 1
        for j, part in enumerate(_items(_field(obj, 'parts', where)), 1):
            pwhere = f'{where}.parts({j})'
            name = _field(part, 'part_name', pwhere)
            if not isinstance(name, str) or name not in PART_TO_CLASS:
                raise MalformedAnnotation(f'{pwhere}.part_name {name!r} is not a person part '
                                          f'(known: {sorted(PART_TO_CLASS)})')
            label[_mask(_field(part, 'mask', pwhere), shape, pwhere) > 0] = PART_TO_CLASS[name]
    return label, people


def annotation_to_parts(anno, parts: PartSet) -> Tuple[np.ndarray, int]:
    """The label of one `anno` struct in a part set (58 or 108), following the module's rules.

    Returns:
        (H, W) uint8 label ids of the set (255: ignored parts), and the number of objects.
    """
    shape = None
    label = None
    objects = _objects(anno)
    for k, obj in enumerate(objects, 1):
        where = f'anno.objects({k})'
        mask = _mask(_field(obj, 'mask', where), shape, where)
        if label is None:
            shape = mask.shape
            label = np.zeros(shape, dtype=np.uint8)
        cls = _voc_class(obj, where)
        rest = parts.rules[cls][0]
        if rest is not None:
            label[mask > 0] = rest
        for j, part in enumerate(_items(_field(obj, 'parts', where)), 1):
            pwhere = f'{where}.parts({j})'
            name = _field(part, 'part_name', pwhere)
            lid = parts.part_id(cls, name)
            if lid is None:
                raise MalformedAnnotation(
                    f'{pwhere}.part_name {name!r} is not a {cls} part of {parts.preset} '
                    f'(known: {parts.known_parts(cls)})')
            label[_mask(_field(part, 'mask', pwhere), shape, pwhere) > 0] = lid
    return label, len(objects)


def write_label(path: str, label: np.ndarray) -> None:
    """A palette (P-mode) PNG with the VOC colour map: its indices are the ids."""
    png = Image.fromarray(label)  # (H, W) uint8 -> 'L'; a palette makes it 'P'
    png.putpalette(_PALETTE)
    png.save(path)


def load_annotation(path: str):
    import scipy.io  # only here: the tool's one scipy use
    try:
        data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises several types for a broken file
        raise MalformedAnnotation(f'not a readable .mat file ({type(e).__name__}: {e})')
    if 'anno' not in data:
        names = sorted(k for k in data if not k.startswith('__'))
        raise MalformedAnnotation(f"no variable 'anno' (variables: {names})")
    return data['anno']


def convert_one(task: Tuple) -> dict:
    """Convert one .mat file; never raises for a bad file (the result says why).

    Args:
        task: (mat path, png path or a tuple of png paths (one per split folder),
            skip_empty[, parts]); parts is 'person' (default), '58' or '108'.
    """
    mat_path, png_paths, skip_empty = task[:3]
    parts = task[3] if len(task) > 3 else 'person'
    num_classes = len(set_classes(parts))
    result = dict(id=osp.splitext(osp.basename(mat_path))[0], error=None, people=0,
                  has_parts=False, written=False,
                  pixels=np.zeros(num_classes, dtype=np.int64), ignored=0)
    try:
        anno = load_annotation(mat_path)
        if parts == 'person':
            label, result['people'] = annotation_to_label(anno)
        else:
            label, result['people'] = annotation_to_parts(anno, part_set(parts))
    except MalformedAnnotation as e:
        result['error'] = str(e)
        return result
    except Exception as e:  # anything else in a file is as much its fault
        result['error'] = f'{type(e).__name__}: {e}'
        return result
    counts = np.bincount(label.ravel(), minlength=256)
    result['has_parts'] = bool(counts[1:IGNORE_INDEX].any())  # not background, not ignored
    if result['has_parts'] or not skip_empty:
        for png_path in (png_paths,) if isinstance(png_paths, str) else png_paths:
            write_label(png_path, label)
        result['written'] = True
        result['pixels'] = counts[:num_classes]
        result['ignored'] = int(counts[IGNORE_INDEX])
    return result


def read_split_lists(split_dir: str) -> Dict[str, List[str]]:
    """{split: ids} from every *.txt in `split_dir` (ids, or "image label" lines)."""
    files = sorted(glob.glob(osp.join(split_dir, '*.txt')))
    if not files:
        raise FileNotFoundError(f'--split-lists {split_dir}: no *.txt split lists there')
    splits: Dict[str, List[str]] = {}
    for path in files:
        stem = osp.splitext(osp.basename(path))[0]
        split = stem[:-len('_id')] if stem.endswith('_id') else stem
        if split in splits:
            raise ValueError(f'--split-lists {split_dir}: two lists for split {split!r} '
                             f'({split}.txt and {split}_id.txt); keep one')
        with open(path) as f:
            lines = [ln.split() for ln in f if ln.strip()]
        splits[split] = [osp.splitext(osp.basename(tokens[0]))[0] for tokens in lines]
    return splits


def link_image(src: str, dst: str) -> None:
    """`dst` -> `src` as a symbolic link (a copy where links are not allowed)."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if osp.lexists(dst):
        os.remove(dst)
    try:
        os.symlink(osp.abspath(src), dst)
    except OSError:
        shutil.copyfile(src, dst)


def convert(ann_dir: str, out_dir: str, list_dir: Optional[str] = None,
            split_dir: Optional[str] = None, nproc: int = 1, skip_empty: bool = False,
            parts: str = 'person', split_dirs: bool = False, images: Optional[str] = None,
            img_dir: Optional[str] = None, file=sys.stdout) -> dict:
    """Convert every .mat (or the split lists' ids), write labels and id lists.

    Args:
        parts: 'person', '58' or '108' (the module's part sets).
        split_dirs: labels of split s go to `out_dir/s/` (needs `split_dir`).
        images: VOC2010's JPEGImages/, whose image of each written label is linked into
            `img_dir` (per split with `split_dirs`).

    Returns:
        the summary: counts, per-class pixel counts, written lists, and `bad`,
        a list of (path, reason) for every unreadable or malformed file.
    """
    from mmengine.utils import track_parallel_progress, track_progress

    if parts not in ('person', *PART_SET_PRESETS):
        raise ValueError(f'parts must be person, 58 or 108, got {parts!r}')
    classes = set_classes(parts)  # builds the part set: a broken table fails here, once
    list_dir = list_dir or osp.dirname(osp.abspath(out_dir))
    bad: List[Tuple[str, str]] = []
    splits = read_split_lists(split_dir) if split_dir else None
    if split_dirs and splits is None:
        raise ValueError('--split-dirs needs --split-lists: the splits name the folders')
    if splits is None:
        mats = sorted(glob.glob(osp.join(ann_dir, '*.mat')))
        if not mats:
            raise FileNotFoundError(f'{ann_dir}: no .mat files')
    else:
        wanted = sorted({i for ids in splits.values() for i in ids})
        mats = []
        for i in wanted:
            path = osp.join(ann_dir, i + '.mat')
            if osp.isfile(path):
                mats.append(path)
            else:
                where = [s for s, ids in splits.items() if i in ids]
                bad.append((path, f'listed in {where} but missing'))
    # where each image's label goes: one folder, or the folder of every split listing it
    folders: Dict[str, List[str]] = {}
    for mat in mats:
        i = osp.splitext(osp.basename(mat))[0]
        folders[i] = [osp.join(out_dir, s) for s, ids in splits.items() if i in ids] \
            if split_dirs else [out_dir]
    for folder in {f for fs in folders.values() for f in fs} | {out_dir}:
        os.makedirs(folder, exist_ok=True)
    tasks = [(m, tuple(osp.join(f, i + '.png') for f in folders[i]), skip_empty, parts)
             for m, i in ((m, osp.splitext(osp.basename(m))[0]) for m in mats)]
    if nproc > 1:
        results = track_parallel_progress(convert_one, tasks, nproc, file=file)
    else:
        results = track_progress(convert_one, tasks, file=file)

    for mat, r in zip(mats, results):
        if r['error'] is not None:
            bad.append((mat, r['error']))
    good = [r for r in results if r['error'] is None]
    written = {r['id'] for r in results if r['written']}
    with_parts = [r['id'] for r in good if r['has_parts']]
    os.makedirs(list_dir, exist_ok=True)
    lists: Dict[str, int] = {}
    dropped: Dict[str, int] = {}
    out_splits = ({'all': with_parts} if splits is None else
                  {s: [i for i in ids if i in written] for s, ids in splits.items()})
    for split, ids in out_splits.items():
        path = osp.join(list_dir, f'{split}_id.txt')
        with open(path, 'w') as f:
            f.writelines(i + '\n' for i in ids)
        lists[path] = len(ids)
        if splits is not None:
            dropped[split] = len(splits[split]) - len(ids)
    linked, missing_images = 0, []
    if images is not None:
        img_dir = img_dir or osp.join(osp.dirname(osp.abspath(out_dir)),
                                      'img_dir' if split_dirs else 'JPEGImages')
        to_link = out_splits if split_dirs else {'': sorted(written)}
        for split, ids in to_link.items():
            for i in ids:
                src = osp.join(images, i + '.jpg')
                if not osp.isfile(src):
                    missing_images.append(src)
                    continue
                link_image(src, osp.join(img_dir, split, i + '.jpg'))
                linked += 1
    pixels = np.sum([r['pixels'] for r in results], axis=0).tolist() if results \
        else [0] * len(classes)
    return dict(
        parts=parts, files=len(mats), read=len(good),
        with_people=sum(r['people'] > 0 for r in good), with_parts=len(with_parts),
        written=len(written), skipped=sum(not r['written'] for r in good), lists=lists,
        dropped=dropped, pixels=dict(zip(classes, pixels)),
        ignored=sum(r['ignored'] for r in results), linked=linked, img_dir=img_dir, bad=bad,
        missing_images=missing_images)


def format_summary(s: dict, out_dir: str) -> str:
    person = s.get('parts', 'person') == 'person'
    what = 'person parts' if person else 'parts'
    head = (f'{s["files"]} .mat files, {s["read"]} read, '
            + (f'{s["with_people"]} with people, ' if person else '')
            + f'{s["with_parts"]} with {what}; {s["written"]} labels written to {out_dir}')
    lines = [head + (f' ({s["skipped"]} skipped: no {what[:-1]})' if s['skipped'] else '')]
    lines.append('pixels per class: ' + ', '.join(f'{k} {v}' for k, v in s['pixels'].items())
                 + ('' if person else f'; ignored (255) {s.get("ignored", 0)}'))
    for path, n in s['lists'].items():
        lines.append(f'id list: {path} ({n} ids)')
    for split, n in s['dropped'].items():
        if n:
            lines.append(f'{split}: {n} listed ids have no label (bad, missing or skipped)')
    if s.get('linked'):
        lines.append(f'images: {s["linked"]} linked into {s["img_dir"]}')
    return '\n'.join(lines)


def resolve_split_lists(value: Optional[str]) -> Optional[str]:
    """--split-lists: a folder, or 'gmnet' for the shipped Pascal-Part split."""
    return PASCAL_PART_SPLITS if value == 'gmnet' else value


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('ann_dir', metavar='ANNOTATIONS_PART_DIR',
                        help="Pascal-Part's Annotations_Part/ (<id>.mat files)")
    parser.add_argument('out_dir', metavar='OUT_DIR',
                        help='where <id>.png labels go, e.g. '
                             'data/pascal_person_part/SegmentationPart')
    parser.add_argument('--parts', choices=('person', '58', '108'), default='person',
                        help='the label set: PASCAL-Person-Part (default), Pascal-Part-58 '
                             'or Pascal-Part-108')
    parser.add_argument('--split-lists', metavar='DIR|gmnet',
                        help='convert only the ids of the *.txt lists here and write each '
                             "as <split>_id.txt; 'gmnet': GMNet's Pascal-Part split, 4,998 "
                             'train / 5,105 val (default: all .mat files, all_id.txt)')
    parser.add_argument('--split-dirs', action='store_true',
                        help="labels of each split in OUT_DIR/<split>/ (LogicSeg's layout)")
    parser.add_argument('--images', metavar='DIR',
                        help="VOC2010's JPEGImages/: link each written label's image into "
                             '--img-dir')
    parser.add_argument('--img-dir', metavar='DIR',
                        help='where --images are linked (default: img_dir/<split>/ beside '
                             'OUT_DIR with --split-dirs, else JPEGImages/ beside it)')
    parser.add_argument('--list-dir', metavar='DIR',
                        help='where the id lists go (default: the parent of OUT_DIR)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument('--skip-empty', action='store_true',
                        help='write no label for an image without any part pixel')
    args = parser.parse_args(argv)
    split_lists = resolve_split_lists(args.split_lists)
    if not osp.isdir(args.ann_dir):
        parser.error(f'ANNOTATIONS_PART_DIR {args.ann_dir} is not a folder')
    if split_lists and not osp.isdir(split_lists):
        parser.error(f'--split-lists {args.split_lists} is not a folder')
    if args.split_dirs and not split_lists:
        parser.error('--split-dirs needs --split-lists (DIR or gmnet): the splits name the '
                     'folders')
    if args.images and not osp.isdir(args.images):
        parser.error(f'--images {args.images} is not a folder')
    if args.img_dir and not args.images:
        parser.error('--img-dir needs --images')
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}')
    try:
        summary = convert(args.ann_dir, args.out_dir, list_dir=args.list_dir,
                          split_dir=split_lists, nproc=args.nproc,
                          skip_empty=args.skip_empty, parts=args.parts,
                          split_dirs=args.split_dirs, images=args.images,
                          img_dir=args.img_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_summary(summary, args.out_dir))
    bad, missing = summary['bad'], summary['missing_images']
    if bad or missing:  # one error naming every bad file
        what = ([f'{len(bad)} .mat file(s) unreadable or malformed, no label written for '
                 'them'] if bad else []) + \
               ([f'{len(missing)} image(s) missing, not linked'] if missing else [])
        print(f'error: {"; ".join(what)}:\n' +
              '\n'.join([f'  {path}: {reason}' for path, reason in bad] +
                        [f'  {path}: missing' for path in missing]), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
