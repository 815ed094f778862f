"""Two sample photos for the shopper's page, drawn here (no bundled binaries): a dress on a plain background and
a two-piece outfit, each garment in one flat colour so a click finds it even with untrained SAM weights."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw

SAMPLE_NAMES = ("dress", "outfit")
WIDTH, HEIGHT = 600, 800
BACKGROUND = (236, 233, 226)
SKIN = (224, 186, 160)


@functools.cache
def sample_jpeg(name: str) -> bytes:
    """The sample photo `name` (one of SAMPLE_NAMES) as JPEG bytes, 600 x 800."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _figure(draw)
    if name == "dress":
        draw.polygon([(240, 190), (360, 190), (420, 600), (180, 600)], fill=(178, 34, 52))
    elif name == "outfit":
        draw.polygon([(235, 190), (365, 190), (375, 400), (225, 400)], fill=(32, 58, 120))
        draw.polygon([(225, 400), (375, 400), (380, 700), (310, 700), (300, 470), (290, 700), (220, 700)],
                     fill=(196, 170, 120))
    else:
        raise KeyError(name)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _figure(draw: ImageDraw.ImageDraw) -> None:
    """A simple person: head, neck, arms and legs, drawn under the garments."""
    draw.ellipse((260, 70, 340, 170), fill=SKIN)
    draw.rectangle((288, 160, 312, 195), fill=SKIN)
    draw.polygon([(235, 195), (205, 420), (225, 425), (250, 230)], fill=SKIN)
    draw.polygon([(365, 195), (395, 420), (375, 425), (350, 230)], fill=SKIN)
    draw.rectangle((240, 560, 285, 760), fill=SKIN)
    draw.rectangle((315, 560, 360, 760), fill=SKIN)
