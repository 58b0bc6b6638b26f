"""A Python client generated with grpcio-tools, run by tests/images.rs against a live gateway.

Usage: interop_media.py ADDRESS PROTO_DIR GEN_DIR OUT_DIR

Generates the stubs from the contract, then, with grpcio's default 4 MiB receive limit:
  1. CreateImage (gpt-image-1, 1536x1024): reassembles the image from its chunks (image_index,
     offset, last), saves OUT_DIR/image.png and checks it as a PNG decoder would: the signature,
     every chunk's CRC-32, the IHDR size, and that the IDAT data inflates to the expected size;
  2. CreateSpeech (tts-1, wav): joins the audio chunks, saves OUT_DIR/speech.wav and opens it with
     Python's `wave` module.
Prints one JSON object with what it saw; exits non-zero when a check fails.
"""

import glob
import json
import os
import struct
import sys
import wave
import zlib


def generate(proto_dir, out_dir):
    from grpc_tools import protoc

    os.makedirs(out_dir, exist_ok=True)
    files = sorted(glob.glob(os.path.join(proto_dir, "openai_gateway", "v1", "*.proto")))
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("grpc_tools.protoc failed")
    sys.path.insert(0, out_dir)


def check_png(data):
    """Validates a PNG like a decoder: signature, chunk CRCs, IHDR, IDAT inflates fully."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("bad PNG signature")
    at, width, height, idat, kinds = 8, None, None, b"", []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind = data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise SystemExit(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        kinds.append(kind.decode())
        at += 12 + length
    if kinds[0] != "IHDR" or kinds[-1] != "IEND":
        raise SystemExit(f"bad chunk order {kinds}")
    raw = zlib.decompress(idat)
    if len(raw) != (width + 1) * height:  # 8-bit palette rows plus a filter byte each
        raise SystemExit(f"IDAT inflates to {len(raw)} bytes")
    return width, height


def main():
    address, proto_dir, gen_dir, out_dir = sys.argv[1:5]
    generate(proto_dir, gen_dir)
    os.makedirs(out_dir, exist_ok=True)

    import grpc
    from openai_gateway.v1 import images_pb2, images_pb2_grpc, speech_pb2, speech_pb2_grpc

    result = {}
    with grpc.insecure_channel(address) as channel:
        # 1. An image, reassembled from its chunks.
        images = images_pb2_grpc.ImagesServiceStub(channel)
        request = images_pb2.CreateImageRequest(
            model="gpt-image-1",
            prompt="A minimalist poster of a mountain at sunrise",
            size="1536x1024",
        )
        parts, done, chunks, largest = {}, set(), 0, 0
        for message in images.CreateImage(request, timeout=60):
            largest = max(largest, message.ByteSize())
            if message.WhichOneof("event") == "image_chunk":
                c = message.image_chunk
                buf = parts.setdefault(c.image_index, bytearray())
                if c.offset != len(buf):
                    raise SystemExit(f"chunk at offset {c.offset}, expected {len(buf)}")
                buf += c.data
                chunks += 1
                if c.last:
                    done.add(c.image_index)
        if done != {0}:
            raise SystemExit(f"images completed: {done}")
        png_path = os.path.join(out_dir, "image.png")
        with open(png_path, "wb") as f:
            f.write(parts[0])
        with open(png_path, "rb") as f:
            width, height = check_png(f.read())
        result["png"] = {"width": width, "height": height, "chunks": chunks, "largest": largest}

        # 2. A speech clip as WAV, opened with the standard library's decoder.
        speech = speech_pb2_grpc.SpeechServiceStub(channel)
        request = speech_pb2.CreateSpeechRequest(
            model="tts-1", voice="alloy", input="Welcome to our app!", response_format="wav")
        audio, start = bytearray(), None
        for message in speech.CreateSpeech(request, timeout=60):
            kind = message.WhichOneof("event")
            if kind == "start":
                start = message.start
            elif kind == "audio":
                audio += message.audio.data
        wav_path = os.path.join(out_dir, "speech.wav")
        with open(wav_path, "wb") as f:
            f.write(audio)
        with wave.open(wav_path, "rb") as w:
            result["wav"] = {
                "channels": w.getnchannels(),
                "framerate": w.getframerate(),
                "sampwidth": w.getsampwidth(),
                "frames": w.getnframes(),
                "content_type": start.content_type if start else None,
            }
            if w.readframes(w.getnframes()) == b"" and w.getnframes() > 0:
                raise SystemExit("no audio frames")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
