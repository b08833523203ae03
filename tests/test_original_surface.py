"""Every module and public name of the original imgstore 0.4.0 wheel is importable here.

The lists below are the original's import surface (``dir()`` of each module of the 0.4.0
wheel, and the public members of its classes), kept as data; ``docs/compatibility.md`` says
what each one is here.
"""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

#: module -> names of the original 0.4.0 wheel (modules it imported, e.g. ``cv2``, left out)
ORIGINAL_NAMES = {
    "imgstore": ["DirectoryImgStore", "VideoImgStore", "__version__", "ensure_color", "ensure_grayscale",
                 "extract_only_frame", "get_supported_formats", "main_test", "new_for_filename", "new_for_format",
                 "test"],
    "imgstore.stores": ["DEVNULL", "DirectoryImgStore", "EXTRA_DATA_FILE_EXTENSIONS", "FourCC",
                        "ImageCodecProcessor", "ImgStoreIndex", "JsonCustomEncoder", "STORE_INDEX_FILENAME",
                        "STORE_LOCK_FILENAME", "STORE_MD_FILENAME", "STORE_MD_KEY", "VideoImgStore", "ZoneInfo",
                        "_FRAME_MD", "_ImgStore", "_VERBOSE_DEBUG_CHUNKS", "_VERBOSE_DEBUG_GETS", "_VERBOSE_VERY",
                        "_extract_ranges", "_extract_store_metadata", "_parse_basedir_fullpath", "bloscpack",
                        "ensure_color", "ensure_grayscale", "extract_only_frame", "get_local_timezone_zoneinfo",
                        "get_supported_formats", "motif_extra_data_h5_attrs", "motif_extra_data_h5_to_df",
                        "motif_extra_data_json_to_df", "new_for_filename", "new_for_format"],
    "imgstore.util": ["FourCC", "ImageCodecProcessor", "JsonCustomEncoder", "ZoneInfo", "_cvt_color",
                      "ensure_color", "ensure_grayscale", "get_local_timezone", "get_local_timezone_zoneinfo",
                      "motif_extra_data_h5_attrs", "motif_extra_data_h5_to_df", "motif_extra_data_json_to_df",
                      "motif_get_parse_true_fps", "motif_get_recording_timezone"],
    "imgstore.align": ["StoreAligner"],
    "imgstore.apps": ["FontRendererStatusBar", "_log", "generate_timecodes", "get_supported_formats",
                      "main_generate_timecodes", "main_saver", "main_test", "main_viewer",
                      "motif_get_parse_true_fps", "motif_get_recording_timezone", "new_for_filename",
                      "new_for_format", "new_window"],
    "imgstore.index": ["FRAME_MD", "ImgStoreIndex", "_load_index"],
    "imgstore.constants": ["DEVNULL", "EXTRA_DATA_FILE_EXTENSIONS", "FRAME_MD", "STORE_INDEX_FILENAME",
                           "STORE_LOCK_FILENAME", "STORE_MD_FILENAME", "STORE_MD_KEY"],
    "imgstore.ui": ["_IS_MAC", "_SCREEN_RESOLUTION", "_Window", "_log", "get_and_parse_screen_resolution",
                    "get_screen_resolution", "new_window"],
    "imgstore.font": ["DEFAULT_FONT", "FONT_POS_BOTTOM", "FONT_POS_TOP", "FONT_POS_TOP_LEFT", "FontRenderer",
                      "FontRendererStatusBar", "fit_text", "measure_string"],
    "imgstore.tests": ["TEST_DATA_DIR", "__version__"],
}

_STORE_MEMBERS = ["FRAME_MD", "add_extra_data", "add_image", "chunks", "close", "convert_frame_time_to_datetime",
                  "created", "disable_decoding", "duration", "empty", "extract_only_frame", "filename",
                  "find_extra_data_files", "frame_time_max", "frame_time_min", "full_path", "get_extra_data",
                  "get_extra_data_samplerate", "get_frame_metadata", "get_image", "get_nearest_image",
                  "get_next_framenumber", "get_next_image", "has_extra_data", "image_shape", "lossless", "mode",
                  "reindex", "save_index", "supported_formats", "supports_format", "user_metadata", "uuid",
                  # private ones published scripts use
                  "_get_chunk_metadata", "_iter_chunk_n_and_chunk_paths", "_chunk_n_and_chunk_paths"]

#: (module, class) -> public members of the original's class
ORIGINAL_CLASS_MEMBERS = {
    ("imgstore.stores", "DirectoryImgStore"): _STORE_MEMBERS,
    ("imgstore.stores", "VideoImgStore"): _STORE_MEMBERS + ["insert_chunk"],
    ("imgstore.stores", "_ImgStore"): [m for m in _STORE_MEMBERS if m != "lossless"],
    ("imgstore.util", "ImageCodecProcessor"): ["CV2_CODEC_RE", "check_code", "convert_to_bgr", "cv2_enum_to_code",
                                               "encoding", "from_cv2_enum", "from_pylon_format",
                                               "set_default_code"],
    ("imgstore.util", "JsonCustomEncoder"): ["default", "encode", "item_separator", "iterencode",
                                             "key_separator"],
    ("imgstore.index", "ImgStoreIndex"): ["VERSION", "chunks", "create_database", "find_chunk",
                                          "find_chunk_nearest", "get_all_metadata", "get_chunk_metadata", "log",
                                          "new_from_chunks", "new_from_file", "to_file", "frame_count",
                                          "frame_min", "frame_max", "frame_time_min", "frame_time_max"],
    ("imgstore.align", "StoreAligner"): ["MISSING_POLICY_BLACK", "MISSING_POLICY_DROP", "MISSING_POLICY_HOLD",
                                         "extract_common_frames", "iter_imgs"],
    ("imgstore.ui", "_Window"): ["imshow", "size", "waitKey"],
    ("imgstore.font", "FontRenderer"): ["measure_string", "write_paragraph", "write_string"],
    ("imgstore.font", "FontRendererStatusBar"): ["POS_BOTTOM", "POS_TOP", "POS_TOP_LEFT", "extract", "layout",
                                                 "measure_string", "new_for_image", "new_for_image_size",
                                                 "render", "write_paragraph", "write_string"],
}

#: names that need a change in a file this issue does not own (see docs/compatibility.md, "Pending")
@pytest.mark.parametrize("module", sorted(ORIGINAL_NAMES))
def test_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("module,name", [(m, n) for m, names in sorted(ORIGINAL_NAMES.items()) for n in names])
def test_name_importable(module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} is missing"


@pytest.mark.parametrize("module,cls,member", [(m, c, a) for (m, c), members in sorted(ORIGINAL_CLASS_MEMBERS.items())
                                               for a in members])
def test_class_member(module, cls, member):
    klass = getattr(importlib.import_module(module), cls)
    assert hasattr(klass, member), f"{module}.{cls}.{member} is missing"


def test_importing_apps_stays_cheap():
    import subprocess
    import sys

    code = "import sys, imgstore.apps; print(sorted(m for m in ('cv2', 'imgstore.apps.cli', 'imgstore.apps.viewer', " \
           "'tkinter', 'PIL.ImageDraw') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version():
    import imgstore
    from packaging.version import Version

    assert imgstore.__version__ == importlib.metadata.version("imgstore")
    assert Version(imgstore.__version__) > Version("0.4.0")  # scripts check for at least the original's


def test_original_names_mean_the_same():
    import imgstore
    import imgstore.apps
    import imgstore.constants
    import imgstore.font
    import imgstore.index
    import imgstore.ui
    from imgstore.align import StoreAligner

    assert imgstore.constants.STORE_MD_KEY == "__store"
    assert imgstore.index.FRAME_MD == ("frame_number", "frame_time")
    assert imgstore.apps.new_for_filename is imgstore.new_for_filename
    assert (StoreAligner.MISSING_POLICY_DROP, StoreAligner.MISSING_POLICY_HOLD,
            StoreAligner.MISSING_POLICY_BLACK) == ("drop", "zoh", "black")
    assert (imgstore.font.FONT_POS_TOP, imgstore.font.FONT_POS_BOTTOM, imgstore.font.FONT_POS_TOP_LEFT) == (0, 1, 2)
    assert imgstore.font.DEFAULT_FONT == 0  # cv2.FONT_HERSHEY_SIMPLEX
    assert callable(imgstore.main_test) and callable(imgstore.test)
    assert isinstance(imgstore.ui.get_and_parse_screen_resolution(default=(800, 600)), tuple)


def test_util_codec_and_cvt_color():
    import numpy as np

    from imgstore.util import ImageCodecProcessor, _cvt_color

    cv2 = pytest.importorskip("cv2")
    c = ImageCodecProcessor()
    assert c.cv2_enum_to_code(cv2.COLOR_RGB2BGR) == "cv_rgb"
    assert ImageCodecProcessor.from_cv2_enum(cv2.COLOR_BayerGR2BGR).encoding == "cv_bayergr"
    assert c.check_code("cv_yuv_nv12") and not c.check_code("nope")
    bw = np.zeros((8, 8), np.uint8)
    assert c.convert_to_bgr(bw, method_enum=cv2.COLOR_GRAY2BGR).shape == (8, 8, 3)
    assert _cvt_color(bw, cv2.COLOR_GRAY2BGR).shape == (8, 8, 3)
    assert _cvt_color(np.zeros((8, 8, 3), np.uint8), cv2.COLOR_BGR2GRAY).shape == (8, 8)
    with pytest.raises(KeyError):
        c.cv2_enum_to_code(cv2.COLOR_BGR2GRAY)  # not a conversion to BGR


def test_font_draws_a_statusbar():
    import numpy as np

    pytest.importorskip("cv2")
    from imgstore.font import FontRendererStatusBar

    img = np.zeros((100, 200, 3), np.uint8)
    bar = FontRendererStatusBar.new_for_image(img, ltext="123", rtext="2020-01-01T00:00:00")
    bar.render(img, ltext="123", rtext="2020-01-01T00:00:00", bgcolor=(40, 40, 40))
    assert img[60:, :].any() and not img[:50].any()  # drawn in the bottom bar only
    left, right = bar.extract(img)
    assert left.any() and right.any()
