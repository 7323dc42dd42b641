"""Reads a TensorBoard run directory with TensorBoard's own event reader and prints what it found as JSON, for
EndToEndTests/FormatReaderTests: every scalar series (step, value), every image (step, width, height, the PNG's
size and its first bytes' signature), and every text. The reader checks each record's CRCs: a damaged record
raises an error here instead of being skipped.

Usage: python read_tensorboard.py RUN_DIRECTORY"""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def count_records(path):
    """Every record through TensorBoard's record reader, which checks both CRCs of each (the accumulator below
    would stop quietly at a damaged record; this raises)."""
    reader = pywrap_tensorflow.PyRecordReader_New(path.encode(), 0, b"")
    count = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return count
        count += 1


def main(run):
    files = sorted(glob.glob(os.path.join(run, "*tfevents*")))
    records = sum(count_records(path) for path in files)
    accumulator = event_accumulator.EventAccumulator(run, size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    out = {"files": [os.path.basename(p) for p in files], "records": records, "scalars": {}, "images": {}, "texts": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in accumulator.Scalars(tag)]
    for tag in tags["images"]:
        out["images"][tag] = [{"step": e.step, "width": e.width, "height": e.height, "bytes": len(e.encoded_image_string),
                               "png": e.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"} for e in accumulator.Images(tag)]
    for tag in tags["tensors"]:
        for e in accumulator.Tensors(tag):
            plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
            out["texts"][tag] = {"step": e.step, "plugin": plugin,
                                 "text": b"".join(e.tensor_proto.string_val).decode("utf-8")}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
