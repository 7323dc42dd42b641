"""Writes pictures of one MNIST digit with Pillow, in every PNG mode and bit depth Pillow writes, as JPEG, at
several sizes, and one "photographed" (dark ink on uneven white paper, 300x300, off-centre, blurred, noisy,
JPEG-compressed), for EndToEndTests/FormatReaderTests: `mnist-dist predict` must read each and classify it as it
classifies the digit itself.

Usage: python make_pictures.py DIGIT.raw (784 bytes, MNIST's light ink on dark) OUTPUT_DIRECTORY
Prints the files written, one per line."""
import os
import random
import sys

from PIL import Image, ImageFilter


def main(raw, out):
    digit = Image.frombytes("L", (28, 28), open(raw, "rb").read())  # light ink on black, as MNIST
    paper = Image.eval(digit, lambda v: 255 - v)                     # dark ink on white, as people draw
    big = paper.resize((280, 280), Image.LANCZOS)
    written = []

    def save(image, name, **options):
        path = os.path.join(out, name)
        image.save(path, **options)
        written.append(path)

    save(digit, "mnist-28x28.png")                                   # already MNIST's form: taken as it is
    save(big.point(lambda v: 255 if v > 128 else 0).convert("1"), "bilevel-1bit-280.png")
    save(paper.resize((56, 56), Image.LANCZOS), "gray-8bit-56.png")
    save(big.convert("I").point(lambda v: v * 257).convert("I;16"), "gray-16bit-280.png")
    save(paper.resize((84, 84), Image.LANCZOS).convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16),
         "palette-84.png")
    # Ink on a transparent sheet: grey + alpha, and RGBA; and a palette whose background entry is transparent.
    ink = Image.eval(big, lambda v: 255 - v)
    sheet = Image.merge("LA", (Image.new("L", big.size, 0), ink))
    save(sheet, "gray-alpha-280.png")
    save(Image.merge("RGBA", (Image.new("L", big.size, 20), Image.new("L", big.size, 20), Image.new("L", big.size, 90), ink)),
         "rgba-280.png")
    transparent = paper.resize((84, 84), Image.LANCZOS).point(lambda v: 255 if v > 200 else 0).convert("P")
    save(transparent, "palette-transparent-84.png", transparency=255)
    # Blue ink on yellowish paper, not square, with margins.
    page = Image.new("RGB", (200, 120), (250, 240, 200))
    stroke = big.resize((100, 100), Image.LANCZOS)
    page.paste(Image.new("RGB", (100, 100), (20, 30, 140)), (60, 10), Image.eval(stroke, lambda v: 255 - v))
    save(page, "rgb-200x120.png")
    save(page, "rgb-200x120.jpg", quality=90)
    save(big, "gray-280.jpg", quality=90)
    save(big.convert("RGB"), "rgb-progressive-280.jpg", quality=85, progressive=True)
    save(photographed(paper), "photographed-300.jpg", quality=80)
    print("\n".join(written))


def photographed(paper):
    """Dark ink on uneven white paper: 300x300, the digit 150 px high, off-centre, blurred, with noise."""
    rng = random.Random(7)
    sheet = Image.new("L", (300, 300))
    sheet.putdata([int(235 - 25 * (x + y) / 600 + rng.uniform(-6, 6)) for y in range(300) for x in range(300)])
    ink = Image.eval(paper.resize((150, 150), Image.BICUBIC), lambda v: 255 - v).filter(ImageFilter.GaussianBlur(1.5))
    sheet.paste(Image.new("L", (150, 150), 40), (110, 60), ink)
    return sheet


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
