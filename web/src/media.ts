// Reassembling binary answers from their chunks (README, "Reassembling images" and "Audio").

/** The bytes of one file, written at each chunk's offset. */
export class Assembly {
  private parts: { offset: number; data: Uint8Array }[] = [];
  private length = 0;

  /** Adds `data`, which belongs at byte `offset`. */
  add(offset: number, data: Uint8Array): void {
    this.parts.push({ offset, data });
    this.length = Math.max(this.length, offset + data.length);
  }

  /** The whole file so far (`total`, when known, fixes its length). */
  bytes(total?: number): Uint8Array {
    const out = new Uint8Array(total && total > 0 ? total : this.length);
    for (const { offset, data } of this.parts) {
      out.set(data.subarray(0, Math.max(0, out.length - offset)), offset);
    }
    return out;
  }
}

/** The image's MIME type from its first bytes (PNG, JPEG or WebP, what OpenAI sends). */
export function imageType(bytes: Uint8Array): string {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "image/png";
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    return "image/jpeg";
  }
  if (bytes[8] === 0x57 && bytes[9] === 0x45 && bytes[10] === 0x42 && bytes[11] === 0x50) {
    return "image/webp";
  }
  return "application/octet-stream";
}
