"""Shrink the guide's pictures: a 64-colour palette PNG looks the same for line plots and is
~4x smaller. Usage: python docs/img/shrink.py docs/img/*.png (rewrites the files in place)."""

import sys

from PIL import Image

for path in sys.argv[1:]:
    image = Image.open(path).convert("RGB")
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
