from mmcv.transforms import LoadImageFromFile
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadCheckedImageFromFile(LoadImageFromFile):
    """mmcv's `LoadImageFromFile`, whose every failure names the file.

    mmcv names the file only when decoding returns None; an empty or otherwise
    undecodable file raises OpenCV's own error, which does not. Here any failure to
    read or decode becomes one `OSError` naming the file, so a broken image met
    mid-epoch stops training with the file to look at (nothing is skipped).
    The shipped train pipelines name it; their test pipelines keep mmcv's
    `LoadImageFromFile`, the name mmseg's `MMSegInferencer` looks up to put its own
    loader in its place.

    Args: as `LoadImageFromFile` (`ignore_empty=True` still returns None).
    """

    def transform(self, results: dict) -> dict:
        try:
            return super().transform(results)
        except Exception as err:  # OpenCV, PIL, the file backend: several types
            message = ' '.join(str(err).split())
            raise OSError(f'cannot read image {results.get("img_path")}: '
                          f'{type(err).__name__}: {message}') from None
