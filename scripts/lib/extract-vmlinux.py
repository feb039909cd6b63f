#!/usr/bin/env python3
"""Writes the uncompressed kernel (an ELF `vmlinux`) inside a bzImage, if it can be booted
directly: QEMU loads such an ELF through its PVH entry point (the Xen note
XEN_ELFNOTE_PHYS32_ENTRY, which Debian's kernels have), skipping the firmware's kernel loader
and the kernel's own decompression. Under TCG that decompression alone took ~7 s of a 15 s
boot (docs/image.md "Boot time").

Usage: extract-vmlinux.py BZIMAGE OUT
Exit 0: OUT written (atomically). Exit 3: no bootable ELF inside (OUT untouched; boot the
bzImage). Anything else: an error, one line on stderr.
"""

import lzma
import os
import struct
import sys
import zlib

XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4


def candidates(blob):
    """(offset, decompress) for each place a compressed payload may start."""
    for magic, fmt in ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip")):
        at = blob.find(magic)
        while at >= 0:
            yield at, fmt
            at = blob.find(magic, at + 1)


def decompress(data, fmt):
    try:
        if fmt == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    except (lzma.LZMAError, zlib.error):
        return None


def has_pvh_entry(elf):
    """An ELF64 little-endian executable with a Xen PHYS32_ENTRY note in a PT_NOTE segment."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 32)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(elf):
            return False
        p_type, _flags, p_offset = struct.unpack_from("<IIQ", elf, at)
        p_filesz, = struct.unpack_from("<Q", elf, at + 32)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, min(p_offset + p_filesz, len(elf))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\x00")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def main():
    if len(sys.argv) != 3:
        print("usage: extract-vmlinux.py BZIMAGE OUT", file=sys.stderr)
        return 2
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        blob = f.read()
    view = memoryview(blob)  # each candidate without a copy of the rest of the file
    for at, fmt in candidates(blob):
        elf = decompress(view[at:], fmt)
        if elf and has_pvh_entry(elf):
            tmp = out + ".tmp"
            with open(tmp, "wb") as f:
                f.write(elf)
            os.replace(tmp, out)
            return 0
    return 3


if __name__ == "__main__":
    sys.exit(main())
