r"""Build PASCAL-Person-Part labels from the original Pascal-Part annotations.

    python tools/convert_pascal_part.py ANNOTATIONS_PART_DIR OUT_DIR \
        [--split-lists DIR] [--list-dir DIR] [--nproc N] [--skip-empty]

e.g. `python tools/convert_pascal_part.py data/Annotations_Part
data/pascal_person_part/SegmentationPart --nproc 8`, then link VOC2010's `JPEGImages/`
into `data/pascal_person_part/` (the layout `configs/_base_/datasets/pascal_person_part.py`
reads: `JPEGImages/`, `SegmentationPart/`, `<split>_id.txt`).

Each `ANNOTATIONS_PART_DIR/<id>.mat` (a MATLAB struct `anno` whose `objects(k)` have
`class`, `class_ind`, `mask` and `parts(j).part_name` / `.mask`) becomes `OUT_DIR/<id>.png`,
a palette PNG with the VOC colour map whose indices are the standard ids: 0 background,
1 head, 2 torso, 3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg (`PART_TO_CLASS`,
docs/architecture.md, "Datasets and label layouts").

Rules, all deterministic:
- Only person objects (class 'person', class_ind 15) are painted; any other object
  (a dog's or a horse's 'head' included) changes nothing and stays background.
- A person pixel that no part covers stays background (0), as in the DeepLab release,
  whose labels hold the parts only: its labels contain no "person" class and no ignore
  value, and Pascal-Part people annotated by silhouette alone (small or occluded ones)
  have no parts to give. Such images count as "with people" but not "with person parts".
- Overlaps are painted in file order, later over earlier: objects in `anno.objects`
  order (the Pascal-Part toolkit's `mat2map.m`: "objects are ordered such that later
  objects can occlude previous objects"), and within a person its parts in order, as
  `mat2map.m` paints them.
- A person part whose name `PART_TO_CLASS` lacks, a mask of the wrong size, a file
  without `anno`, without objects, or that scipy cannot read is reported, with all
  other bad files, in one error at the end (exit code 1); no label is written for it.
  The good files are still converted.

Id lists, written to `--list-dir` (default: the parent of OUT_DIR, i.e. the data root):
Pascal-Part has no split of its own. With `--split-lists DIR`, every `*.txt` in DIR
(one id per line, or the DeepLab release's "/JPEGImages/<id>.jpg /SegmentationPart/<id>.png"
lines) is a split: only its ids are converted, and it is written as `<split>_id.txt`
(`train.txt` and `train_id.txt` both give `train_id.txt`); an id without a .mat is
a bad file. Without it, every .mat is converted and `all_id.txt` lists the images with
at least one person-part pixel (use it as `split='all'`, or split it yourself; the
standard split is 1,716 train / 1,817 val). With `--skip-empty`, labels without a
person-part pixel (no person, or people without parts) are not written, and no list
names them.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from hseg_mm.datasets.labels import STANDARD_CLASSES, voc_colormap  # noqa: E402

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


def _is_person(obj, where: str) -> bool:
    cls = _field(obj, 'class', where)
    if not isinstance(cls, str):
        raise MalformedAnnotation(f'{where}.class: expected a name, got {cls!r}')
    is_person = cls == PERSON_CLASS
    if 'class_ind' in obj._fieldnames:
        ind = np.asarray(obj.class_ind)
        if ind.size != 1 or (int(ind.item()) == PERSON_CLASS_IND) != is_person:
            shown = f'{ind.item():g}' if ind.size == 1 else ind.tolist()
            raise MalformedAnnotation(f'{where}: class {cls!r} and class_ind {shown} '
                                      f'disagree (person = {PERSON_CLASS_IND})')
    return is_person


def annotation_to_label(anno) -> Tuple[np.ndarray, int]:
    """The label of one Pascal-Part `anno` struct (as loaded with `squeeze_me=True,
    struct_as_record=False`), following the module's rules.

    Returns:
        (H, W) uint8 standard ids, and the number of person objects.
    """
    objects = _items(_field(anno, 'objects', 'anno'))
    if not objects:
        raise MalformedAnnotation('anno.objects is empty: the label size is unknown')
    shape = None
    label, people = None, 0
    for k, obj in enumerate(objects, 1):
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


def convert_one(task: Tuple[str, str, bool]) -> dict:
    """Convert one .mat file; never raises for a bad file (the result says why)."""
    mat_path, png_path, skip_empty = task
    result = dict(id=osp.splitext(osp.basename(mat_path))[0], error=None, people=0,
                  has_parts=False, written=False,
                  pixels=np.zeros(len(STANDARD_CLASSES), dtype=np.int64))
    try:
        label, result['people'] = annotation_to_label(load_annotation(mat_path))
    except MalformedAnnotation as e:
        result['error'] = str(e)
        return result
    except Exception as e:  # anything else in a file is as much its fault
        result['error'] = f'{type(e).__name__}: {e}'
        return result
    result['has_parts'] = bool(label.any())
    if result['has_parts'] or not skip_empty:
        write_label(png_path, label)
        result['written'] = True
        result['pixels'] = np.bincount(label.ravel(), minlength=len(STANDARD_CLASSES))
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


def convert(ann_dir: str, out_dir: str, list_dir: Optional[str] = None,
            split_dir: Optional[str] = None, nproc: int = 1, skip_empty: bool = False,
            file=sys.stdout) -> dict:
    """Convert every .mat (or the split lists' ids), write labels and id lists.

    Returns:
        the summary: counts, per-class pixel counts, written lists, and `bad`,
        a list of (path, reason) for every unreadable or malformed file.
    """
    from mmengine.utils import track_parallel_progress, track_progress

    list_dir = list_dir or osp.dirname(osp.abspath(out_dir))
    bad: List[Tuple[str, str]] = []
    splits = read_split_lists(split_dir) if split_dir else None
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
    os.makedirs(out_dir, exist_ok=True)
    tasks = [(m, osp.join(out_dir, osp.splitext(osp.basename(m))[0] + '.png'), skip_empty)
             for m in mats]
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
    return dict(
        files=len(mats), read=len(good), with_people=sum(r['people'] > 0 for r in good),
        with_parts=len(with_parts), written=len(written),
        skipped=sum(not r['written'] for r in good), lists=lists, dropped=dropped,
        pixels=dict(zip(STANDARD_CLASSES,
                        np.sum([r['pixels'] for r in results], axis=0).tolist()
                        if results else [0] * len(STANDARD_CLASSES))),
        bad=bad)


def format_summary(s: dict, out_dir: str) -> str:
    lines = [f'{s["files"]} .mat files, {s["read"]} read, {s["with_people"]} with people, '
             f'{s["with_parts"]} with person parts; {s["written"]} labels written to '
             f'{out_dir}' + (f' ({s["skipped"]} skipped: no person part)'
                             if s['skipped'] else '')]
    lines.append('pixels per class: ' + ', '.join(f'{k} {v}' for k, v in s['pixels'].items()))
    for path, n in s['lists'].items():
        lines.append(f'id list: {path} ({n} ids)')
    for split, n in s['dropped'].items():
        if n:
            lines.append(f'{split}: {n} listed ids have no label (bad, missing or skipped)')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('ann_dir', metavar='ANNOTATIONS_PART_DIR',
                        help="Pascal-Part's Annotations_Part/ (<id>.mat files)")
    parser.add_argument('out_dir', metavar='OUT_DIR',
                        help='where <id>.png labels go, e.g. '
                             'data/pascal_person_part/SegmentationPart')
    parser.add_argument('--split-lists', metavar='DIR',
                        help='convert only the ids of the *.txt lists here and write each '
                             'as <split>_id.txt (default: all .mat files, all_id.txt)')
    parser.add_argument('--list-dir', metavar='DIR',
                        help='where the id lists go (default: the parent of OUT_DIR)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument('--skip-empty', action='store_true',
                        help='write no label for an image without any person-part pixel')
    args = parser.parse_args(argv)
    if not osp.isdir(args.ann_dir):
        parser.error(f'ANNOTATIONS_PART_DIR {args.ann_dir} is not a folder')
    if args.split_lists and not osp.isdir(args.split_lists):
        parser.error(f'--split-lists {args.split_lists} is not a folder')
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}')
    try:
        summary = convert(args.ann_dir, args.out_dir, list_dir=args.list_dir,
                          split_dir=args.split_lists, nproc=args.nproc,
                          skip_empty=args.skip_empty)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_summary(summary, args.out_dir))
    if summary['bad']:
        print(f'error: {len(summary["bad"])} .mat file(s) unreadable or malformed, '
              'no label written for them:\n' +
              '\n'.join(f'  {path}: {reason}' for path, reason in summary['bad']),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
