// Drawing SAM's masks (COCO uncompressed RLE: column-major runs, zeros first) over the photo.

export const MASK_COLOURS = [[230, 25, 75], [0, 130, 200], [60, 180, 75]];

/**
 * Paints the mask's pixels into `imageData` (the overlay's size: the mask's or smaller, never larger) in
 * `colour` with `alpha`; clears the rest. Works run by run, so a mask of a few hundred runs costs next to nothing.
 */
export function paintRle(rle, imageData, colour, alpha = 120) {
  const [height, width] = rle.size;
  const { width: outWidth, height: outHeight, data } = imageData;
  data.fill(0);
  const scaleX = outWidth / width;
  const scaleY = outHeight / height;
  const counts = rle.counts;
  let position = 0;
  for (let i = 0; i < counts.length; i += 1) {
    const end = position + counts[i];
    if (i % 2 === 1) {
      let cursor = position;
      while (cursor < end) {
        const column = Math.floor(cursor / height);
        const rowStart = cursor - column * height;
        const rowEnd = Math.min(height, rowStart + (end - cursor));
        const x = Math.min(outWidth - 1, Math.floor(column * scaleX));
        const yStart = Math.floor(rowStart * scaleY);
        const yEnd = Math.min(outHeight - 1, Math.floor((rowEnd - 1) * scaleY));
        for (let y = yStart; y <= yEnd; y += 1) {
          const offset = (y * outWidth + x) * 4;
          data[offset] = colour[0];
          data[offset + 1] = colour[1];
          data[offset + 2] = colour[2];
          data[offset + 3] = alpha;
        }
        cursor += rowEnd - rowStart;
      }
    }
    position = end;
  }
  return imageData;
}
