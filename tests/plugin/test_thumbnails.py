"""The slicer's embedded preview, read from G-code without OctoPrint's thumbnail plugins."""

from __future__ import annotations

from octoprint_herald.thumbnails import embedded_thumbnail, thumbnail_from_lines

from tests.support.pictures import JPEG, gcode_with_thumbnails, png


def test_the_largest_png_or_jpeg_is_the_jobs_picture(tmp_path):
    small, large = png(16, 16, (10, 10, 10)), png(300, 300)
    text = gcode_with_thumbnails(("thumbnail", 16, 16, small), ("thumbnail", 300, 300, large),
                                 ("thumbnail_QOI", 400, 400, b"qoif-not-drawn"))
    assert thumbnail_from_lines(text.splitlines()) == large  # QOI skipped although larger
    path = tmp_path / "benchy.gcode"
    path.write_text(text)
    assert embedded_thumbnail(str(path)) == large
    jpg = gcode_with_thumbnails(("thumbnail_JPG", 220, 124, JPEG))  # OrcaSlicer's JPEG block
    assert thumbnail_from_lines(jpg.splitlines()) == JPEG


def test_no_thumbnail_or_a_broken_one_gives_none(tmp_path):
    assert thumbnail_from_lines(["G28", "G1 X1"]) is None
    broken = gcode_with_thumbnails(("thumbnail", 10, 10, b"not an image"))
    assert thumbnail_from_lines(broken.splitlines()) is None
    unfinished = gcode_with_thumbnails(("thumbnail", 10, 10, png())).replace("; thumbnail end", "")
    assert thumbnail_from_lines(unfinished.splitlines()) is None
    assert embedded_thumbnail(str(tmp_path / "missing.gcode")) is None
