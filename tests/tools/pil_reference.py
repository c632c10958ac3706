#!/usr/bin/python3
"""Reference decode + resize with Pillow, for tests/test_image.c.

usage: pil_reference.py OUTDIR [--exif] [--size W H] FILE...

For every FILE writes OUTDIR/<basename>.ref: a text line "w h dw dh\n", then the
decoded RGB bytes (Image.open -> [ImageOps.exif_transpose] -> convert("RGB"),
w*h*3) and the resized RGB bytes (resize((dw, dh), BICUBIC, reducing_gap=None),
dw*dh*3), i.e. transformers' BLIP image processor up to the resize.
A file Pillow cannot open gets a .ref with the single line "error <reason>".
Exit status 77 when Pillow is not installed."""
import os
import sys

try:
    from PIL import Image, ImageOps
except ImportError:
    sys.stderr.write("python3-pil is not installed\n")
    sys.exit(77)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    args = argv[2:]
    exif = False
    dw, dh = 224, 224
    files = []
    i = 0
    while i < len(args):
        if args[i] == "--exif":
            exif = True
        elif args[i] == "--size":
            dw, dh = int(args[i + 1]), int(args[i + 2])
            i += 2
        else:
            files.append(args[i])
        i += 1
    for f in files:
        dst = os.path.join(out, os.path.basename(f) + ".ref")
        try:
            im = Image.open(f)
            if exif:
                im = ImageOps.exif_transpose(im)
            if im.mode != "RGB":
                im = im.convert("RGB")
            dec = im.tobytes()
            res = im.resize((dw, dh), Image.BICUBIC, reducing_gap=None).tobytes()
        except Exception as ex:  # noqa: BLE001 - reported to the C test
            with open(dst, "wb") as fh:
                fh.write(("error %s\n" % str(ex).replace("\n", " ")).encode())
            continue
        with open(dst, "wb") as fh:
            fh.write(b"%d %d %d %d\n" % (im.width, im.height, dw, dh))
            fh.write(dec)
            fh.write(res)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
