"""Face alignment (xfr.align): photos in, ArcFace-aligned 112x112 crops out, bad input named."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from xfr.align import (
    CROP_SIZE,
    TEMPLATE_112,
    AlignmentCache,
    ImageError,
    NoFaceError,
    align,
    align_many,
    detect,
    load_image,
)

PHOTO = ("Aaron_Peirsol", 1)
OTHER = ("Abel_Pacheco", 1)


def _photo(lfw_root, who=PHOTO):
    from xfr.data.lfw import image_folder

    name, k = who
    return image_folder(lfw_root) / name / f"{name}_{k:04d}.jpg"


def _landmarks_after_warp(photo: np.ndarray, detector: str) -> np.ndarray:
    """The detector's five landmarks mapped through the alignment's own similarity transform."""
    import cv2

    face = detect(photo, detector)
    face = face[np.argmax(face[:, 2] * face[:, 3])]
    pts = face[4:14].reshape(5, 2)
    matrix, _ = cv2.estimateAffinePartial2D(pts, TEMPLATE_112, method=cv2.LMEDS)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def test_a_photo_is_warped_so_its_landmarks_land_on_the_arcface_template(lfw_root):
    photo = load_image(_photo(lfw_root))
    crop = align(photo)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    assert crop.std() > 20  # a face, not the black border
    warped = _landmarks_after_warp(photo, "yunet")
    assert np.abs(warped - TEMPLATE_112).max() < 6.0
    # the aligned crop, upscaled, has its face where the template says
    import cv2

    big = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR)
    again = detect(big)
    assert len(again) >= 1
    pts = again[np.argmax(again[:, 2] * again[:, 3])][4:14].reshape(5, 2) / 2
    assert np.abs(pts - TEMPLATE_112).mean() < 4.0


def test_an_aligned_crop_passes_through_untouched():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert np.array_equal(align(crop), crop)
    assert np.array_equal(align(crop.transpose(2, 0, 1)), crop)  # channels first, too


def test_no_face_is_a_clear_error():
    flat = np.full((250, 250, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        align(flat)


def test_the_file_name_is_in_the_no_face_error(tmp_path):
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(path)
    with pytest.raises(NoFaceError, match="wall.png"):
        align(path)


def test_several_faces_keep_the_largest_with_a_warning_or_fail_by_option(lfw_root):
    import cv2

    big = load_image(_photo(lfw_root))
    small = cv2.resize(load_image(_photo(lfw_root, OTHER)), (150, 150))
    canvas = np.zeros((250, 250 + 150, 3), np.uint8)
    canvas[:, :250] = big
    canvas[50:200, 250:] = small
    with pytest.warns(UserWarning, match="faces found; using the largest"):
        crop = align(canvas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = align(big)
    assert np.abs(crop.astype(int) - alone.astype(int)).mean() < 3  # the big face was kept
    with pytest.raises(NoFaceError, match="faces found; expected one"):
        align(canvas, multiple="error")
    with pytest.raises(ValueError, match="multiple must be"):
        align(canvas, multiple="smallest")


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10, 4), np.uint8), "3 channels"),
    (np.zeros((2, 10, 10, 3), np.uint8), "2 or 3 dimensions"),
    (np.full((120, 120, 3), np.nan), "NaN"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((20, 20, 3), bool), "dtype"),
    (b"not a path or array", "not an image"),
])
def test_bad_arrays_are_named(bad, message):
    with pytest.raises(ImageError, match=message):
        align(bad)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text")
    with pytest.raises(ImageError, match="notes.jpg"):
        align(path)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        align(tmp_path / "missing.jpg")


def test_unknown_detector_is_rejected():
    with pytest.raises(ValueError, match="detector must be one of"):
        align(np.zeros((200, 200, 3), np.uint8), detector="mtcnn")
    with pytest.raises(ValueError, match="detector must be one of"):
        AlignmentCache("/tmp/unused", detector="mtcnn")


def test_align_many_is_align_one_by_one(lfw_root):
    paths = [_photo(lfw_root), _photo(lfw_root, OTHER)]
    batch = align_many(paths)
    assert batch.shape == (2, 112, 112, 3)
    for path, crop in zip(paths, batch, strict=True):
        assert np.array_equal(align(path), crop)
    assert align_many([]).shape == (0, 112, 112, 3)


def test_the_cache_aligns_a_file_once_and_keys_it_by_content_and_detector(lfw_root, tmp_path):
    import shutil

    src = tmp_path / "a.jpg"
    shutil.copy(_photo(lfw_root), src)
    cache = AlignmentCache(tmp_path / "cache")
    first = cache.get(src)
    stored = list((tmp_path / "cache").rglob("*.png"))
    assert len(stored) == 1
    # the second read comes from the stored PNG: replace it to prove it is read
    from PIL import Image

    Image.fromarray(np.zeros_like(first)).save(stored[0])
    assert cache.get(src).max() == 0
    # a copy under another name is the same content: same entry
    other = tmp_path / "b.jpg"
    shutil.copy(src, other)
    assert cache.get_many([other]).max() == 0
    # another detector is another entry
    pytest.importorskip("dlib")
    crop = AlignmentCache(tmp_path / "cache", detector="dlib").get(src)
    assert crop.max() > 0 and len(list((tmp_path / "cache").rglob("*.png"))) == 2


def test_crops_of_another_alignment_version_are_never_read(lfw_root, tmp_path):
    """A cache made by other alignment code (version 1 stored its crops directly under the
    root) is not served: the photo is aligned again and stored under this version."""
    import shutil

    from PIL import Image

    from xfr.align import ALIGNMENT_VERSION, file_digest

    src = tmp_path / "a.jpg"
    shutil.copy(_photo(lfw_root), src)
    digest = file_digest(src)
    legacy = tmp_path / "cache" / digest[:2] / f"{digest}.png"
    legacy.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(legacy)
    crop = AlignmentCache(tmp_path / "cache").get(src)
    assert crop.max() > 0
    np.testing.assert_array_equal(crop, align(src))
    stored = tmp_path / "cache" / f"v{ALIGNMENT_VERSION}" / digest[:2] / f"{digest}.png"
    assert stored.is_file()


def test_dlib_finds_the_same_five_landmarks_as_yunet(lfw_root):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    for who in (PHOTO, OTHER):
        photo = load_image(_photo(lfw_root, who))
        yunet = detect(photo, "yunet")
        dlib_faces = detect(photo, "dlib")
        assert dlib_faces.shape[1] == 15 and len(dlib_faces) >= 1
        a = yunet[np.argmax(yunet[:, 2] * yunet[:, 3])][4:14].reshape(5, 2)
        b = dlib_faces[np.argmax(dlib_faces[:, 2] * dlib_faces[:, 3])][4:14].reshape(5, 2)
        inter_eye = np.linalg.norm(a[1] - a[0])
        # two different landmark models agree to a fifth of the distance between the eyes
        assert np.linalg.norm(a - b, axis=1).max() < 0.2 * inter_eye
        crop_y = align(photo).astype(float)
        crop_d = align(photo, detector="dlib").astype(float)
        assert np.abs(crop_y - crop_d).mean() < 25  # the same face, nearly the same place
        assert np.abs(crop_y - np.roll(crop_d, 20, axis=0)).mean() > np.abs(crop_y - crop_d).mean()


def test_dlib_detector_without_dlib_says_how_to_install_it(monkeypatch):
    import xfr.align as align_module

    monkeypatch.setitem(sys.modules, "dlib", None)
    monkeypatch.setattr(align_module._local, "dlib", None, raising=False)
    with pytest.raises(ImportError, match=r"xfr\[dlib\]"):
        align(np.zeros((200, 200, 3), np.uint8), detector="dlib")
