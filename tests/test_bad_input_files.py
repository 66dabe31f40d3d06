"""Bad input files are named: they raise CorruptFileError (on_corrupt: error) or are skipped and listed
(on_corrupt: skip); a class folder without files is an error naming the folder."""
import json
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from modalities.audio import readers as audio
from modalities.image import readers as image
from modalities.splits import CorruptFileError
from modalities.text import readers as text
from modalities.video import readers as video

RATE = 8000
FMT = audio.ClipFormat(sample_rate=RATE, samples=800, crop="center")


def tone(n=800) -> np.ndarray:
    return (0.5 * np.sin(np.arange(n) / 5)).astype(np.float32)


def read_both_ways(read, bad_path, good_count, listed_as=None):
    """read(on_corrupt, skipped) -> samples kept: raises naming bad_path, or skips exactly it (listed as
    `listed_as`, default its path) and keeps the good samples."""
    with pytest.raises(CorruptFileError, match=str(bad_path.name)):
        read("error", [])
    skipped = []
    kept = read("skip", skipped)
    assert skipped == [listed_as or str(bad_path)] and kept == good_count


# ---- audio ------------------------------------------------------------------------------------------

def nan_wav(path):
    samples = tone()
    samples[100:110] = np.nan
    sf.write(path, samples, RATE, subtype="FLOAT")


def inf_wav(path):
    samples = tone()
    samples[5] = np.inf
    sf.write(path, samples, RATE, subtype="FLOAT")


def truncated_wav(path):
    sf.write(path, tone(), RATE, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still promises 800 frames


@pytest.mark.parametrize("write_bad, message", [
    (nan_wav, r"10 NaN or infinite samples \(first at frame 100\)"),
    (inf_wav, r"1 NaN or infinite samples \(first at frame 5\)"),
    (truncated_wav, r"truncated audio: the header promises 800 frames, the file holds 3\d\d"),
])
def test_bad_audio_is_named_or_skipped(tmp_path, write_bad, message):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, tone(), RATE, subtype="PCM_16")
    write_bad(bad)
    files = [(good, 0), (bad, 1)]
    with pytest.raises(CorruptFileError, match=rf"bad\.wav: {message}"):
        audio.read_clips(files, FMT, "error", [])
    read_both_ways(lambda oc, skipped: len(audio.read_clips(files, FMT, oc, skipped).y), bad, 1)


def test_wav_with_an_open_size_placeholder_is_read(tmp_path):
    """A streamed WAV whose writer left the data size at 0xFFFFFFFF is not taken for a truncated one."""
    path = tmp_path / "streamed.wav"
    sf.write(path, tone(), RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    waveform, rate = audio.read_waveform(path)
    assert rate == RATE and len(waveform) == 800 and np.isfinite(waveform).all()


def test_empty_audio_class_folder_is_named(tmp_path):
    (tmp_path / "dog").mkdir()
    sf.write(tmp_path / "dog" / "a.wav", tone(), RATE)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no clips here")
    with pytest.raises(ValueError, match=r"class folders \['.*cat'\] hold no audio files"):
        audio.class_folder_files(tmp_path)


def test_empty_keyword_folder_is_named(tmp_path):
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
    sf.write(tmp_path / "yes" / "a.wav", tone(), RATE)
    for name in ("validation_list.txt", "testing_list.txt"):
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=r"keyword folders \['.*no'\] hold no audio files"):
        audio.speech_commands_files(tmp_path, ["yes", "no"])


# ---- images -----------------------------------------------------------------------------------------

def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(path, side=20000):
    """A PNG whose header declares side x side 1-bit pixels, with a few bytes of image data."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def class_folders(root, bad_writer):
    """root/a/good.png, root/b/good.png and root/b/bad.png written by bad_writer."""
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(root / cls / "good.png")
    bad_writer(root / "b" / "bad.png")
    return root / "b" / "bad.png"


def read_folders(root):
    return lambda oc, skipped: len(image.read_class_folders(root, 8, 3, None, oc, skipped)[1])


def test_decompression_bomb_is_a_corrupt_file(tmp_path):
    bad = class_folders(tmp_path, bomb_png)
    with pytest.raises(CorruptFileError, match=r"bad\.png: too many pixels, a possible decompression bomb"):
        image.read_image(bad, 8, 3)
    read_both_ways(read_folders(tmp_path), bad, 2)


def test_image_over_the_pixel_warning_limit_is_a_corrupt_file(tmp_path, monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice that, PIL only warns; the reader treats it as a bomb too."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 8x8 good images are under it, 12x12 over
    bad = class_folders(tmp_path, lambda p: Image.fromarray(np.zeros((12, 12), np.uint8)).save(p))
    with pytest.raises(CorruptFileError, match=r"bad\.png: too many pixels"):
        image.read_image(bad, 8, 3)
    read_both_ways(read_folders(tmp_path), bad, 2)


def test_float_image_with_nan_is_a_corrupt_file(tmp_path):
    """A float TIFF (PIL opens it whatever its name) would turn NaN into black pixels."""
    def nan_tiff(path):
        pixels = np.ones((8, 8), np.float32)
        pixels[2, 3] = np.nan
        Image.fromarray(pixels, mode="F").save(path, format="TIFF")

    bad = class_folders(tmp_path, nan_tiff)
    with pytest.raises(CorruptFileError, match=r"bad\.png: NaN or infinite pixel values"):
        image.read_image(bad, 8, 1)
    read_both_ways(read_folders(tmp_path), bad, 2)


def test_empty_image_class_folder_is_named(tmp_path):
    class_folders(tmp_path, lambda p: None)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=r"class folders \['.*c'\] hold no images"):
        image.read_class_folders(tmp_path, 8, 3, None, "skip", [])


# ---- video ------------------------------------------------------------------------------------------

def test_empty_video_class_folder_is_named(tmp_path):
    for cls in ("run", "walk"):
        (tmp_path / cls).mkdir()
    (tmp_path / "run" / "a.mp4").write_bytes(b"not decoded here")
    with pytest.raises(ValueError, match=r"class folders \['.*walk'\] hold no clips"):
        video.list_class_folders(tmp_path)


# ---- text -------------------------------------------------------------------------------------------

def text_rows(n=40) -> list[bytes]:
    return [f"review number {i} is {'good' if i % 2 else 'bad'},{i % 2}\n".encode() for i in range(n)]


def read_csv(path, on_corrupt, skipped, labels=None):
    return text.read_table(path, ",", "text", "label", text.LabelMap(labels), text.BadRows(on_corrupt, skipped))


def write_rows(path, extra: bytes) -> None:
    """A header, 20 good rows, the bad line (file line 22), 20 more good rows."""
    rows = text_rows()
    path.write_bytes(b"text,label\n" + b"".join(rows[:20]) + extra + b"".join(rows[20:]))


@pytest.mark.parametrize("extra, message", [
    (b"a review with a \0 byte,1\n", r"NUL byte at column 17"),
    (b'"' + b"x" * 2_000_000 + b'",1\n', r"\d+ bytes long, over the 100000-byte limit"),
    (b"fine text,positive\n", r"label 'positive' is on 1 row\(s\) only.*params \(labels\)"),
])
def test_bad_text_rows_are_named_or_skipped(tmp_path, extra, message):
    path = tmp_path / "d.csv"
    write_rows(path, extra)
    with pytest.raises(CorruptFileError, match=rf"d\.csv:22: {message}"):
        read_csv(path, "error", [])
    skipped = []
    texts = read_csv(path, "skip", skipped)
    assert skipped == [f"{path}:22"] and len(texts) == 40 and sorted(set(texts.labels)) == ["0", "1"]


def test_long_jsonl_line_is_skipped(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(6)]
    lines.insert(3, json.dumps({"text": "y" * 200_000, "label": 1}) + "\n")
    path.write_text("".join(lines))
    bad = text.BadRows("error", [])
    with pytest.raises(CorruptFileError, match=r"d\.jsonl:4: \d+ bytes long"):
        text.read_jsonl(path, "text", "label", text.LabelMap(None), bad)
    skipped = []
    texts = text.read_jsonl(path, "text", "label", text.LabelMap(None), text.BadRows("skip", skipped))
    assert skipped == [f"{path}:4"] and len(texts) == 6


def test_bad_imdb_files_are_named(tmp_path):
    for cls in ("pos", "neg"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "train" / cls / f"{i}_7.txt").write_text(f"a {cls} review {i}")
    bad = tmp_path / "train" / "pos" / "9_7.txt"
    bad.write_bytes(b"a review\0with a NUL byte")
    files = text.imdb_files(tmp_path, "train")
    label_map = text.LabelMap(text.IMDB_CLASSES)
    read_both_ways(lambda oc, skipped: len(text.read_imdb(files, label_map, text.BadRows(oc, skipped))),
                   bad, 6, listed_as=f"{bad}:1")
    for path in (tmp_path / "train" / "neg").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"class folders \['.*neg'\] hold no review files"):
        text.imdb_files(tmp_path, "train")
