"""Pair-list readers: LFW pairs.txt, CALFW/CPLFW/SLLFW style, CSV; malformed lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfr.data.pairs import detect_format, read_pair_list, select_folds


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


LFW = """2\t1
Abel_Pacheco\t1\t4
Abel_Pacheco\t1\tBob_Smith\t2
Carl_Doe\t2\t3
Carl_Doe\t1\tDan_Roe\t1
"""


def test_lfw_pairs_with_folds_and_image_paths(tmp_path):
    (tmp_path / "lfw-deepfunneled").mkdir()
    pairs = read_pair_list(write(tmp_path, "pairs.txt", LFW), tmp_path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 1), (False, 1), (True, 2), (False, 2)]
    assert pairs[0].probe == tmp_path / "lfw-deepfunneled/Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs[1].gallery == tmp_path / "lfw-deepfunneled/Bob_Smith/Bob_Smith_0002.jpg"
    assert [p.fold for p in select_folds(pairs, {2})] == [2, 2]


def test_real_lfw_pairs_file_has_ten_folds_of_600(lfw_root):
    pairs = read_pair_list(lfw_root / "pairs.txt", lfw_root)
    assert len(pairs) == 6000
    held = select_folds(pairs, {9, 10})
    assert len(held) == 1200 and sum(p.same for p in held) == 600
    assert held[0].probe.exists()


def test_lfw_malformed_line_names_its_line_number(tmp_path):
    bad = LFW.replace("Carl_Doe\t2\t3", "Carl_Doe\ttwo\t3")
    with pytest.raises(ValueError, match=r"pairs\.txt:4"):
        read_pair_list(write(tmp_path, "pairs.txt", bad), tmp_path, format="lfw")


def test_calfw_style_two_lines_per_pair(tmp_path):
    (tmp_path / "Ann_Lee").mkdir()
    (tmp_path / "Ann_Lee" / "Ann_Lee_1.jpg").write_bytes(b"")
    text = "Ann_Lee_1.jpg 1\nAnn_Lee_2.jpg 1\nBo_Wu_1.jpg 0\nCy_Ng_3.jpg 0\n"
    pairs = read_pair_list(write(tmp_path, "pairs_CALFW.txt", text), tmp_path)
    assert [p.same for p in pairs] == [True, False]
    assert pairs[0].probe == tmp_path / "Ann_Lee" / "Ann_Lee_1.jpg"  # found in LFW layout
    assert pairs[1].gallery == tmp_path / "Cy_Ng_3.jpg"  # flat folder
    assert {p.fold for p in pairs} == {0}


def test_calfw_odd_line_count_and_label_mismatch_name_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"p\.txt:3: odd number"):
        read_pair_list(write(tmp_path, "p.txt", "a_1.jpg 1\na_2.jpg 1\nb_1.jpg 0\n"), tmp_path)
    with pytest.raises(ValueError, match=r"q\.txt:2: .*disagree"):
        read_pair_list(write(tmp_path, "q.txt", "a_1.jpg 1\nb_1.jpg 0\n"), tmp_path)
    with pytest.raises(ValueError, match=r"r\.txt:2: label"):
        read_pair_list(write(tmp_path, "r.txt", "a_1.jpg 1\na_2.jpg maybe\n"), tmp_path,
                       format="calfw")
    with pytest.raises(ValueError, match=r"s\.txt:1: expected"):
        read_pair_list(write(tmp_path, "s.txt", "a_1.jpg 1 extra\n"), tmp_path, format="calfw")


def test_csv_with_header_any_column_order_and_folds(tmp_path):
    text = "same,gallery,probe,fold\n1,b.jpg,a.jpg,3\nno,d.jpg,c.jpg,4\n"
    pairs = read_pair_list(write(tmp_path, "pairs.csv", text), tmp_path)
    assert [(p.probe.name, p.gallery.name, p.same, p.fold) for p in pairs] == [
        ("a.jpg", "b.jpg", True, 3), ("c.jpg", "d.jpg", False, 4)]


def test_csv_without_header_and_tsv(tmp_path):
    pairs = read_pair_list(write(tmp_path, "p.csv", "x/a.png,y/b.png,0\n"), tmp_path)
    assert pairs[0].probe == tmp_path / "x/a.png" and not pairs[0].same
    pairs = read_pair_list(write(tmp_path, "p.tsv", "a.png\tb.png\ttrue\n"), tmp_path)
    assert pairs[0].same


def test_csv_malformed_rows_name_their_line(tmp_path):
    with pytest.raises(ValueError, match=r"p\.csv:3: label"):
        read_pair_list(write(tmp_path, "p.csv", "probe,gallery,same\na,b,1\na,b,perhaps\n"),
                       tmp_path)
    with pytest.raises(ValueError, match=r"q\.csv:2: expected"):
        read_pair_list(write(tmp_path, "q.csv", "a,b,1\na,b\n"), tmp_path)
    with pytest.raises(ValueError, match=r"r\.csv:1: fold"):
        read_pair_list(write(tmp_path, "r.csv", "a,b,1,x\n"), tmp_path)
    with pytest.raises(ValueError, match=r"s\.csv:1: unknown column"):
        read_pair_list(write(tmp_path, "s.csv", "probe,gallery,same,score\n"), tmp_path)


def test_format_detection(tmp_path):
    assert detect_format(write(tmp_path, "a.txt", LFW)) == "lfw"
    assert detect_format(write(tmp_path, "b.txt", "Ann_Lee_1.jpg 1\n")) == "calfw"
    assert detect_format(write(tmp_path, "c.csv", "a,b,1\n")) == "csv"
    assert detect_format(write(tmp_path, "d.txt", "a.jpg,b.jpg,1\n")) == "csv"
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format(write(tmp_path, "e.txt", "hello\n"))
    with pytest.raises(ValueError, match="empty"):
        detect_format(write(tmp_path, "f.txt", "\n\n"))


def test_missing_files_folders_formats_and_folds_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="pair list"):
        read_pair_list(tmp_path / "nope.txt", tmp_path)
    p = write(tmp_path, "pairs.txt", LFW)
    with pytest.raises(FileNotFoundError, match="image folder"):
        read_pair_list(p, tmp_path / "missing")
    with pytest.raises(ValueError, match="format"):
        read_pair_list(p, tmp_path, format="xml")
    with pytest.raises(ValueError, match=r"fold\(s\) \[7\]"):
        select_folds(read_pair_list(p, tmp_path), {7})


def test_a_blank_line_in_lfw_pairs_does_not_move_pairs_to_another_fold(
    tmp_path: Path, lfw_root: Path
) -> None:
    # Issue 16, item 5: the fold was computed from the line number, blank lines included.
    lines = (lfw_root / "pairs.txt").read_text().splitlines()
    clean = read_pair_list(lfw_root / "pairs.txt", lfw_root)
    spaced = lines[:1] + lines[1:150] + [""] + lines[150:3001] + ["", "   "] + lines[3001:]
    pairs = read_pair_list(write(tmp_path, "pairs.txt", "\n".join(spaced) + "\n"), lfw_root)
    assert [(p.probe, p.gallery, p.same, p.fold) for p in pairs] == [
        (p.probe, p.gallery, p.same, p.fold) for p in clean]
    assert [p.fold for p in pairs[595:605]] == [1] * 5 + [2] * 5


def test_a_missing_lfw_line_is_named_instead_of_shifting_the_folds(tmp_path: Path) -> None:
    missing = LFW.replace("Abel_Pacheco\t1\t4\n", "")  # fold 1 loses its positive pair
    with pytest.raises(ValueError, match=r"pairs\.txt:2: pair 1 of fold 1 should be positive"):
        read_pair_list(write(tmp_path, "pairs.txt", missing), tmp_path, format="lfw")


@pytest.mark.parametrize("fmt", ["auto", "lfw", "calfw", "csv"])
def test_a_binary_pair_list_is_named(tmp_path: Path, fmt: str) -> None:
    from PIL import Image

    from xfr.errors import InputError

    path = tmp_path / "pairs.txt"
    Image.new("RGB", (4, 4)).save(path, format="PNG")  # an image given as the pair list
    with pytest.raises(InputError, match=r"pairs\.txt: a binary file, not a text pair list"):
        read_pair_list(path, tmp_path, format=fmt)
    path.write_bytes(b"Abel\xff\xfe 1 2\n")
    with pytest.raises(InputError, match=r"pairs\.txt: not a UTF-8 text pair list \(byte 0xff"):
        read_pair_list(path, tmp_path, format=fmt)
